// libFuzzer target `manifest`: arbitrary bytes as a manifest file's text, through the code `ipvs-proxy`
// runs on every file it reads: ManifestLoader.decode (JSON, when the text starts with `{` or `[`, and YAML,
// via FastManifestDecoder with Foundation's JSONDecoder or Yams as its fallback), then
// ManifestValidator.validate, then every problem's message.
//
// It also checks FastManifestDecoder's promise ("accepts exactly what the Codable model accepts"):
// decoding again with the fast path off (JSONDecoder or Yams only) must give the same objects and problems.
// And the same bytes as a line of a watch stream: what the fast path reads as an event must be what
// JSONDecoder reads.
// That needs the internal `decode(_:file:into:problems:fastPath:)`, hence `@testable` (debug builds of
// the package have testability on, and the fuzz build is always a debug build).
//
// Not exactly ManifestLoader.load: that refuses files with NUL bytes or invalid UTF-8 before decoding,
// while here invalid UTF-8 becomes U+FFFD and NUL bytes reach the decoder (decode is public API).
//
// Environment:
//   FUZZ_MANIFEST_PRINT=1       print what was decoded and every problem, for looking at one input:
//                               FUZZ_MANIFEST_PRINT=1 .build-fuzz/debug/FuzzManifest some-file.json
//   FUZZ_MANIFEST_SKIP_KNOWN=1  skip inputs that hit bugs already reported (see Docs/fuzzing.md), so a
//                               long run can look for others
//   FUZZ_MANIFEST_DIFFERENCES=DIR  do not stop at a fast/JSONDecoder disagreement: write the input to DIR
//                               (file named by its hash, the disagreement in NAME.txt) and go on, to
//                               collect several kinds of disagreement in one run

import Foundation

@testable import KubernetesModel

#if canImport(Glibc)
    import Glibc
#endif

private func flag(_ name: String) -> Bool { getenv(name).map { String(cString: $0) == "1" } ?? false }
private let printResults = flag("FUZZ_MANIFEST_PRINT")
private let skipKnown = flag("FUZZ_MANIFEST_SKIP_KNOWN")
private let differencesFolder = getenv("FUZZ_MANIFEST_DIFFERENCES").map { String(cString: $0) }

private func save(_ bytes: UnsafeRawBufferPointer, note: String, in folder: String) {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let name = folder + "/" + String(hash, radix: 16)
    for (path, data) in [(name, Array(bytes)), (name + ".txt", Array((note + "\n").utf8))] {
        guard let file = fopen(path, "wb") else { continue }
        _ = data.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
}

/// What ManifestLoader.decode does with the text: JSON or YAML.
private func looksLikeJSON(_ bytes: UnsafeRawBufferPointer) -> Bool {
    for byte in bytes {
        switch byte {
        case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
        case UInt8(ascii: "{"), UInt8(ascii: "["): return true
        default: return false
        }
    }
    return false
}

/// The deepest `{`/`[` nesting outside strings (roughly, as a JSON reader sees it).
private func jsonDepth(_ bytes: UnsafeRawBufferPointer) -> Int {
    var depth = 0
    var deepest = 0
    var inString = false
    var escaped = false
    for byte in bytes {
        if inString {
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                inString = false
            }
            continue
        }
        switch byte {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth += 1
            deepest = max(deepest, depth)
        case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
        default: break
        }
    }
    return deepest
}

private struct Decoded: Equatable {
    var services: [Located<Service>]
    var endpointSlices: [Located<EndpointSlice>]
    var endpoints: [Located<Endpoints>]
    var nodes: [Located<Node>]
    var serviceCIDRs: [Located<ServiceCIDR>]
    var problems: [ManifestProblem]

    init(_ text: String, fastPath: Bool) {
        var set = ManifestSet()
        var problems: [ManifestProblem] = []
        ManifestLoader.decode(text, file: "fuzz.json", into: &set, problems: &problems, fastPath: fastPath)
        services = set.services
        endpointSlices = set.endpointSlices
        endpoints = set.endpoints
        nodes = set.nodes
        serviceCIDRs = set.serviceCIDRs
        self.problems = problems
    }

    var set: ManifestSet {
        var set = ManifestSet()
        set.services = services
        set.endpointSlices = endpointSlices
        set.endpoints = endpoints
        set.nodes = nodes
        set.serviceCIDRs = serviceCIDRs
        return set
    }

    var summary: String {
        "\(services.count) Services, \(endpointSlices.count) EndpointSlices, \(endpoints.count) Endpoints, "
            + "\(nodes.count) Nodes, \(serviceCIDRs.count) ServiceCIDRs, problems: \(problems.map(\.description))"
    }

    static func == (a: Decoded, b: Decoded) -> Bool {
        func same<Object: Hashable>(_ x: [Located<Object>], _ y: [Located<Object>]) -> Bool {
            x.map(\.object) == y.map(\.object) && x.map(\.location) == y.map(\.location)
        }
        return same(a.services, b.services) && same(a.endpointSlices, b.endpointSlices)
            && same(a.endpoints, b.endpoints) && same(a.nodes, b.nodes) && same(a.serviceCIDRs, b.serviceCIDRs)
            && a.problems == b.problems
    }
}

/// The first field where two values differ (`spec.ports`), with both values; nil when none does.
private func fieldDifference(_ a: Any, _ b: Any, path: String) -> String? {
    let x = Mirror(reflecting: a)
    let y = Mirror(reflecting: b)
    func text(_ mirror: Mirror, _ value: Any) -> String {
        // Dictionaries print in hash order: sort their entries.
        mirror.displayStyle == .dictionary
            ? mirror.children.map { String(describing: $0.value) }.sorted().joined(separator: ", ")
            : String(reflecting: value)
    }
    if x.displayStyle == .struct, y.displayStyle == .struct {
        for (left, right) in zip(x.children, y.children) {
            let field = path.isEmpty ? left.label ?? "?" : "\(path).\(left.label ?? "?")"
            if let found = fieldDifference(left.value, right.value, path: field) { return found }
        }
        return nil
    }
    if x.displayStyle == .optional, y.displayStyle == .optional,
        let left = x.children.first?.value, let right = y.children.first?.value
    {
        return fieldDifference(left, right, path: path)
    }
    let (left, right) = (text(x, a), text(y, b))
    return left == right ? nil : "\(path): fast path \(left.prefix(300)), JSONDecoder \(right.prefix(300))"
}

/// Where the fast path and JSONDecoder differ, said briefly.
private func difference(_ fast: Decoded, _ full: Decoded) -> String {
    if fast.problems.isEmpty && !full.problems.isEmpty {
        return "the fast path accepted what JSONDecoder refuses (\(full.problems.map(\.message)))"
    }
    func first<Object: Hashable>(_ x: [Located<Object>], _ y: [Located<Object>], _ kind: String) -> String? {
        for (a, b) in zip(x, y) where a.object != b.object || a.location != b.location {
            let field = fieldDifference(a.object, b.object, path: "") ?? "location: \(a.location) / \(b.location)"
            return "\(kind) \(a.location) differs in \(field)"
        }
        return x.count == y.count ? nil : "\(kind) count: fast path \(x.count), JSONDecoder \(y.count)"
    }
    return first(fast.services, full.services, "Service")
        ?? first(fast.endpointSlices, full.endpointSlices, "EndpointSlice")
        ?? first(fast.endpoints, full.endpoints, "Endpoints")
        ?? first(fast.nodes, full.nodes, "Node")
        ?? first(fast.serviceCIDRs, full.serviceCIDRs, "ServiceCIDR")
        ?? "fast path: \(fast.summary); JSONDecoder: \(full.summary)"
}

/// A watch event as JSONDecoder reads it.
private struct WatchEnvelope: Decodable {
    var type: String
    var object: DecodedDocument?
}

/// The fast path's watch event against JSONDecoder's, for the same line.
private func checkWatchEvent(_ bytes: UnsafeRawBufferPointer) {
    guard let fast = WatchEventLine.decodeFast(ArraySlice(bytes)) else { return }
    let full = try? JSONDecoder().decode(WatchEnvelope.self, from: Data(bytes))
    guard full?.type != fast.type.rawValue || full?.object?.item != fast.item else { return }
    let message = "the fast path read a watch event (\(fast.type.rawValue)) that JSONDecoder reads otherwise: \(String(describing: full?.type)) \(String(describing: full?.object?.item))"
    guard let differencesFolder else { preconditionFailure(message) }
    save(bytes, note: message, in: differencesFolder)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let isJSON = looksLikeJSON(bytes)
    // Crashes/manifest/json-*-stack-overflow*: FastManifestDecoder recurses once per nesting level.
    if skipKnown && isJSON && jsonDepth(bytes) > 256 { return -1 }

    let text = String(decoding: bytes, as: UTF8.self)
    // The public entry point (what ipvs-proxy runs) is decode with the fast path on.
    var set = ManifestSet()
    var problems: [ManifestProblem] = []
    // JSON and YAML alike: the fast path must read what the full decoder (JSONDecoder, or Yams) reads.
    let fast = Decoded(text, fastPath: true)
    let full = Decoded(text, fastPath: false)
    set = fast.set
    problems = fast.problems
    if fast != full {
        let decoder = isJSON ? "JSONDecoder" : "Yams"
        let message = "FastManifestDecoder and \(decoder) disagree: \(difference(fast, full))"
        guard let differencesFolder else { preconditionFailure(message) }
        save(bytes, note: message, in: differencesFolder)
    }
    if isJSON { checkWatchEvent(bytes) }
    let (invalid, warnings) = ManifestValidator.validate(set)
    var total = 0
    for problem in problems + invalid + warnings { total &+= problem.description.utf8.count }
    for service in set.services { total &+= service.location.description.utf8.count }
    withExtendedLifetime(total) {}
    if printResults {
        print(
            "decoded: \(set.services.count) Services, \(set.endpointSlices.count) EndpointSlices, "
                + "\(set.endpoints.count) Endpoints")
        for problem in problems { print("problem: \(problem)") }
        for problem in invalid { print("invalid: \(problem)") }
        for warning in warnings { print("warning: \(warning)") }
    }
    return 0
}
