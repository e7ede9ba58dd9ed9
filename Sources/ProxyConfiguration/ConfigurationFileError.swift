/// A configuration file ipvs-proxy refuses, naming the file and the field.
package struct ConfigurationFileError: Error, Sendable, Hashable, CustomStringConvertible {
    package var file: String
    /// The field's path, as kube-proxy's documentation writes it (`ipvs.scheduler`); empty for the whole file.
    package var path: String
    package var reason: String

    package init(file: String, path: String, reason: String) {
        self.file = file
        self.path = path
        self.reason = reason
    }

    package var description: String {
        path.isEmpty ? "\(file): \(reason)" : "\(file): \(path): \(reason)"
    }
}
