import Foundation

/// Where an object came from: file, document, item of a List, and which object it is.
public struct ObjectLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// The document's position in its file, from 1 (YAML files may hold many).
    public var document: Int
    /// The item's position in a `List` document, from 1.
    public var item: Int?
    public var kind: String?
    /// `namespace/name`, or just the name when the namespace is not given.
    public var name: String?

    public init(file: String, document: Int, item: Int? = nil, kind: String? = nil, name: String? = nil) {
        self.file = file
        self.document = document
        self.item = item
        self.kind = kind
        self.name = name
    }

    /// `web.yaml: document 2, item 3 (Service shop/web)`.
    public var description: String {
        var text = "\(file): document \(document)"
        if let item { text += ", item \(item)" }
        switch (kind, name) {
        case (let kind?, let name?): text += " (\(kind) \(name))"
        case (let kind?, nil): text += " (\(kind))"
        case (nil, let name?): text += " (\(name))"
        case (nil, nil): break
        }
        return text
    }
}

/// One thing wrong with the input, said so that a person can find and fix it.
public struct ManifestProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file, when the problem is with a file as a whole.
    public var file: String
    /// The object, when the problem is inside one.
    public var location: ObjectLocation?
    /// The field's path inside the object, such as `spec.ports[0].port`.
    public var field: String?
    public var message: String
    /// Whether the file system failed (a path missing, a folder or file that cannot be opened or read), rather
    /// than the content being wrong: nothing can then be said of what the file holds, not even that it is empty.
    public var isReadFailure: Bool

    public init(
        file: String, location: ObjectLocation? = nil, field: String? = nil, message: String,
        isReadFailure: Bool = false
    ) {
        self.file = file
        self.location = location
        self.field = field
        self.message = message
        self.isReadFailure = isReadFailure
    }

    /// The file system's refusal of `file`: `cannot open: Too many open files`.
    public static func readFailure(_ file: String, _ action: String, errno code: Int32) -> ManifestProblem {
        ManifestProblem(file: file, message: "\(action): \(String(cString: strerror(code)))", isReadFailure: true)
    }

    public init(at location: ObjectLocation, field: String? = nil, _ message: String) {
        self.init(file: location.file, location: location, field: field, message: message)
    }

    /// `web.yaml: document 2 (Service shop/web): spec.ports[0].port: must be 1-65535, not 0`.
    public var description: String {
        var text = location?.description ?? file
        if let field { text += ": \(field)" }
        return text + ": " + message
    }
}

/// Every problem found in an input; nothing of it may be applied.
public struct ManifestErrors: Error, Sendable, CustomStringConvertible {
    public var problems: [ManifestProblem]

    public init(_ problems: [ManifestProblem]) { self.problems = problems }

    public var description: String {
        let lines = problems.map(\.description)
        let shown = lines.prefix(50).joined(separator: "\n")
        return lines.count > 50 ? shown + "\n... and \(lines.count - 50) more problems" : shown
    }
}
