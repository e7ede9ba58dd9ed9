import Foundation
import Synchronization

/// A bearer token kept in a file that is replaced while the proxy runs: projected service-account tokens rotate
/// (kubelet swaps the file about every hour), so the token is read again whenever the file changes.
///
/// client-go re-reads such a file every minute; checking the file's identity (device, inode, size, modification
/// time) at each request costs one `stat` and never sends a token that was already replaced.
package final class TokenFile: Sendable {
    package let path: String
    private struct Cached {
        var identity: [Int]
        var token: String
    }
    private let cached: Mutex<Cached?>

    /// Reads the token now.
    /// - Throws: ``ConfigurationError`` when the file cannot be read.
    package init(path: String) throws {
        self.path = path
        guard let identity = Self.identity(of: path), let token = Self.read(path) else {
            throw ConfigurationError("cannot read the token file \(path)")
        }
        cached = Mutex(Cached(identity: identity, token: token))
    }

    /// The token in the file now; the last one read while the file cannot be read (mid-rotation).
    package var token: String {
        let identity = Self.identity(of: path)
        return cached.withLock { cached in
            if let identity, identity != cached?.identity, let token = Self.read(path) {
                cached = Cached(identity: identity, token: token)
            }
            return cached?.token ?? ""
        }
    }

    private static func identity(of path: String) -> [Int]? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return [
            Int(status.st_dev), Int(status.st_ino), Int(status.st_size), Int(status.st_mtim.tv_sec),
            Int(status.st_mtim.tv_nsec),
        ]
    }

    private static func read(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
    }
}
