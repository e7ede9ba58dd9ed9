import Foundation

/// Runs `body` with a new folder of its own (under the system's temporary folder), and removes the folder with
/// everything in it afterwards, whether `body` returns or throws.
public func withTemporaryFolder<Result>(
    _ label: String, _ body: (String) throws -> Result
) throws -> Result {
    let path = try makeTemporaryFolder(label)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// The same, for async tests.
public func withTemporaryFolder<Result>(
    _ label: String, isolation: isolated (any Actor)? = #isolation, _ body: (String) async throws -> Result
) async throws -> Result {
    let path = try makeTemporaryFolder(label)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Makes a new folder under the system's temporary folder; the caller removes it.
public func makeTemporaryFolder(_ label: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Removes a folder made by ``makeTemporaryFolder(_:)``, with everything in it.
public func removeTemporaryFolder(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}
