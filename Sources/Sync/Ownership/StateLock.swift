import Foundation

/// An exclusive lock on the state folder, so that two ipvs-proxy processes never plan against the same
/// ownership record at once. Released when the value is dropped (or the process ends).
package final class StateLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock without waiting.
    /// - Throws: ``StateError`` when another process holds it, or the folder cannot be made.
    package init(directory: String) throws {
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = (directory as NSString).appendingPathComponent("lock")
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw StateError(file: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason =
                errno == EWOULDBLOCK ? "another ipvs-proxy process holds this lock" : String(cString: strerror(errno))
            close(descriptor)
            throw StateError(file: path, message: reason)
        }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }
}
