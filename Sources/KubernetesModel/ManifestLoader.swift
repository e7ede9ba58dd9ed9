import Foundation
import Yams

/// Reads Kubernetes objects from files and folders: multi-document YAML, JSON, and `List` documents (what
/// `kubectl get ... -o yaml|json` prints). Objects of kinds other than Service, EndpointSlice, Endpoints, Node
/// and ServiceCIDR are ignored.
///
/// Every problem is collected, so one run reports them all; if there is any, nothing is returned.
public enum ManifestLoader {
    /// The file name endings read from folders. A file named directly is read whatever its name.
    public static let manifestExtensions: Set<String> = ["yaml", "yml", "json"]

    /// Loads and validates every object under `paths` (files, or folders searched recursively).
    /// - Throws: ``ManifestErrors`` listing every problem.
    public static func load(paths: [String]) throws(ManifestErrors) -> ManifestSet {
        var problems: [ManifestProblem] = []
        var set = ManifestSet()
        for file in manifestFiles(paths, problems: &problems) {
            do {
                let text = try readText(file)
                decode(text, file: file, into: &set, problems: &problems)
            } catch {
                problems.append(error)
            }
        }
        let (invalid, warnings) = ManifestValidator.validate(set)
        problems += invalid
        set.warnings += warnings
        guard problems.isEmpty else { throw ManifestErrors(problems) }
        return set
    }

    /// Decodes the objects in `text` (YAML or JSON; JSON is YAML's subset, but read far faster as JSON).
    public static func decode(
        _ text: String, file: String, into set: inout ManifestSet, problems: inout [ManifestProblem]
    ) {
        decode(text, file: file, into: &set, problems: &problems, fastPath: true)
    }

    /// - Parameter fastPath: Try ``FastManifestDecoder`` first, for JSON and YAML (tests compare both ways).
    static func decode(
        _ text: String, file: String, into set: inout ManifestSet, problems: inout [ManifestProblem], fastPath: Bool
    ) {
        if looksLikeJSON(text) {
            if fastPath, let item = FastManifestDecoder.decode(text) {
                collect(item, at: ObjectLocation(file: file, document: 1), into: &set, problems: &problems)
                return
            }
            if fastPath { FastDecodingFallbacks.count() }
            do {
                let document = try JSONDecoder().decode(DecodedDocument.self, from: Data(text.utf8))
                collect(document.item, at: ObjectLocation(file: file, document: 1), into: &set, problems: &problems)
            } catch {
                problems.append(ManifestProblem(file: file, message: "invalid JSON: \(jsonMessage(error))"))
            }
            return
        }
        if fastPath, let items = FastManifestDecoder.decodeYAML(text) {
            for (document, item) in items {
                collect(item, at: ObjectLocation(file: file, document: document), into: &set, problems: &problems)
            }
            return
        }
        if fastPath { FastDecodingFallbacks.count() }
        do {
            // Parser, not compose_all: its sequence drops the error of a broken document.
            let parser = try Parser(yaml: text)
            var index = 0
            while let node = try parser.nextRoot() {
                index += 1
                // An empty document (only comments, or `---` twice) holds nothing.
                if case .scalar(let scalar) = node, ["", "~", "null"].contains(scalar.string) { continue }
                let location = ObjectLocation(file: file, document: index)
                do {
                    let document = try YAMLDecoder().decode(DecodedDocument.self, from: node)
                    collect(document.item, at: location, into: &set, problems: &problems)
                } catch {
                    problems.append(ManifestProblem(at: location, "\(error)"))
                }
            }
        } catch {
            problems.append(ManifestProblem(file: file, message: "invalid YAML: \(error)"))
        }
    }

    private static func collect(
        _ item: DecodedItem, at location: ObjectLocation, into set: inout ManifestSet, problems: inout [ManifestProblem]
    ) {
        var location = location
        switch item {
        case .service(let service):
            location.kind = "Service"
            location.name = service.metadata.objectName.description
            set.services.append(Located(service, at: location))
        case .endpointSlice(let slice):
            location.kind = "EndpointSlice"
            location.name = slice.metadata.objectName.description
            set.endpointSlices.append(Located(slice, at: location))
        case .endpoints(let endpoints):
            location.kind = "Endpoints"
            location.name = endpoints.metadata.objectName.description
            set.endpoints.append(Located(endpoints, at: location))
        case .node(let node):
            location.kind = "Node"
            location.name = node.metadata.name
            set.nodes.append(Located(node, at: location))
        case .serviceCIDR(let serviceCIDR):
            location.kind = "ServiceCIDR"
            location.name = serviceCIDR.metadata.name
            set.serviceCIDRs.append(Located(serviceCIDR, at: location))
        case .list(let items):
            for (index, item) in items.enumerated() {
                var itemLocation = location
                itemLocation.item = index + 1
                collect(item, at: itemLocation, into: &set, problems: &problems)
            }
        case .ignored:
            break
        case .failure(let kind, let name, let field, let message):
            location.kind = kind
            location.name = name
            problems.append(ManifestProblem(at: location, field: field, message))
        }
    }

    /// The files to read, in a stable order: named files as given, folders' manifest files sorted.
    package static func manifestFiles(_ paths: [String], problems: inout [ManifestProblem]) -> [String] {
        var files: [String] = []
        let manager = FileManager.default
        for path in paths {
            var info = stat()
            guard stat(path, &info) == 0 else {
                // A path that is not there is not an empty folder (a deploy tool may be replacing it).
                problems.append(
                    errno == ENOENT
                        ? ManifestProblem(file: path, message: "no such file or folder", isReadFailure: true)
                        : .readFailure(path, "cannot look at", errno: errno))
                continue
            }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                files.append(path)
                continue
            }
            var unreadable: [String: String] = [:]
            let enumerator = manager.enumerator(
                at: URL(fileURLWithPath: path), includingPropertiesForKeys: [.isDirectoryKey],
                options: [.skipsHiddenFiles],
                errorHandler: { url, error in
                    unreadable[url.path] = error.localizedDescription
                    return true
                })
            var found: [String] = []
            while let url = enumerator?.nextObject() as? URL {
                let isFolder = (try? url.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) ?? false
                if !isFolder, manifestExtensions.contains(url.pathExtension.lowercased()) { found.append(url.path) }
            }
            // An unreadable folder must not pass for an empty one.
            if let folder = opendir(path) {
                closedir(folder)
            } else {
                unreadable[path] = String(cString: strerror(errno))
            }
            for (folder, reason) in unreadable.sorted(by: { $0.key < $1.key }) {
                problems.append(
                    ManifestProblem(file: folder, message: "cannot read this folder: \(reason)", isReadFailure: true))
            }
            files += found.sorted()
        }
        return files
    }

    /// Reads a file as UTF-8 text, refusing binary files after looking at their start only.
    /// - Throws: A problem that ``ManifestProblem/isReadFailure`` when the file cannot be opened or read.
    static func readText(_ file: String) throws(ManifestProblem) -> String {
        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .readFailure(file, "cannot open", errno: errno) }
        defer { close(descriptor) }
        let binary = ManifestProblem(file: file, message: "not a text file (binary data); expected YAML or JSON")
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .readFailure(file, "cannot read", errno: errno)
            }
            if count == 0 { break }
            // The first chunk decides whether this is text at all: a binary file is never read further.
            if bytes.isEmpty && isBinary(chunk[..<count]) { throw binary }
            bytes.append(contentsOf: chunk[..<count])
        }
        if containsNUL(bytes[...]) { throw binary }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ManifestProblem(file: file, message: "not valid UTF-8 text; expected YAML or JSON")
        }
        return text
    }

    /// NUL bytes or invalid UTF-8 in the first bytes mean a binary file (a cut multi-byte character at the
    /// very end of the sample is forgiven).
    private static func isBinary(_ head: ArraySlice<UInt8>) -> Bool {
        if containsNUL(head) { return true }
        for cut in 0..<4 where head.count >= cut {
            if String(validating: head.dropLast(cut), as: UTF8.self) != nil { return false }
        }
        return true
    }

    private static func containsNUL(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.withUnsafeBytes { $0.count > 0 && memchr($0.baseAddress!, 0, $0.count) != nil }
    }

    private static func looksLikeJSON(_ text: String) -> Bool {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
            case UInt8(ascii: "{"), UInt8(ascii: "["): return true
            default: return false
            }
        }
        return false
    }

    private static func jsonMessage(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error, let underlying = context.underlyingError {
            return "\(underlying.localizedDescription)"
        }
        return "\(error)"
    }
}
