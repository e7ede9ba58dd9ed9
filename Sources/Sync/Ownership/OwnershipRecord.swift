import Foundation
import IPVSModel
import ProxyRules

/// What ipvs-proxy created in the kernel: the virtual servers (with the Service port each serves) and the
/// addresses it bound. Written before the kernel is changed, so that after a crash it still knows.
package struct OwnershipRecord: Sendable, Hashable {
    package var virtualServers: [VirtualServerKey: ServicePortName] = [:]
    package var addresses: Set<IPAddress> = []

    package init(virtualServers: [VirtualServerKey: ServicePortName] = [:], addresses: Set<IPAddress> = []) {
        self.virtualServers = virtualServers
        self.addresses = addresses
    }

    package var isEmpty: Bool { virtualServers.isEmpty && addresses.isEmpty }
}

/// Keeps the ownership record in a folder (by default `/run/ipvs-proxy`), readable and writable by root only,
/// replaced atomically on every write.
package struct OwnershipStore: Sendable {
    package let directory: String
    package var file: String { (directory as NSString).appendingPathComponent("owned.json") }

    package init(directory: String) {
        self.directory = directory
    }

    /// The record, or an empty one when none was written yet.
    /// - Throws: ``StateError`` when the record cannot be looked at or read: taken for "none", the next write would
    ///   forget what is owned.
    package func load() throws -> OwnershipRecord {
        var info = stat()
        guard stat(file, &info) == 0 else {
            guard errno == ENOENT else {
                throw StateError(file: file, message: "cannot look at: \(String(cString: strerror(errno)))")
            }
            return OwnershipRecord()
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw StateError(file: file, message: "cannot read: \(error.localizedDescription)")
        }
        let stored: StoredRecord
        do {
            stored = try JSONDecoder().decode(StoredRecord.self, from: data)
        } catch {
            throw StateError(file: file, message: "is not an ownership record (\(error)); move it away to start afresh")
        }
        var record = OwnershipRecord()
        for entry in stored.virtualServers {
            guard let key = VirtualServerKey(entry.key), let service = ServicePortName(entry.service) else {
                throw StateError(file: file, message: "holds an unreadable virtual server '\(entry.key)'")
            }
            record.virtualServers[key] = service
        }
        for text in stored.addresses {
            guard let address = IPAddress(text) else {
                throw StateError(file: file, message: "holds an unreadable address '\(text)'")
            }
            record.addresses.insert(address)
        }
        return record
    }

    /// Replaces the record (write to a temporary file, then rename), creating the folder if needed.
    package func save(_ record: OwnershipRecord) throws {
        let stored = StoredRecord(
            version: 1,
            virtualServers: record.virtualServers.sorted { $0.key < $1.key }.map {
                StoredRecord.Entry(key: $0.key.description, service: $0.value.description)
            },
            addresses: record.addresses.sorted().map(\.description))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try StateFile.replace(file, in: directory) { try encoder.encode(stored) }
    }

    /// Removes the record (after a cleanup).
    package func remove() throws {
        if FileManager.default.fileExists(atPath: file) { try FileManager.default.removeItem(atPath: file) }
    }

    private struct StoredRecord: Codable {
        var version: Int
        var virtualServers: [Entry]
        var addresses: [String]

        struct Entry: Codable {
            var key: String
            var service: String
        }
    }
}

/// Files in the state folder: root-only, replaced whole (written aside, then renamed), so that a crash leaves
/// either the old content or the new.
enum StateFile {
    /// Replaces `file` in `directory` (made if needed, mode 0700) with what `content` makes (mode 0600).
    static func replace(_ file: String, in directory: String, with content: () throws -> Data) throws {
        let manager = FileManager.default
        do {
            try manager.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let temporary = file + ".tmp"
            guard
                manager.createFile(atPath: temporary, contents: try content(), attributes: [.posixPermissions: 0o600])
            else {
                throw StateError(file: temporary, message: "cannot write: \(String(cString: strerror(errno)))")
            }
            guard rename(temporary, file) == 0 else {
                throw StateError(file: file, message: "cannot replace: \(String(cString: strerror(errno)))")
            }
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError(file: file, message: "cannot write: \(error.localizedDescription)")
        }
    }
}

/// A problem with the ownership record's file.
package struct StateError: Error, Sendable, CustomStringConvertible {
    package var file: String
    package var message: String
    package var description: String { "\(file): \(message)" }
}

/// The ownership record as a syncer keeps it: read from its store once, then remembered, and written only
/// when it changes.
struct OwnershipLedger: Sendable {
    let store: OwnershipStore
    private var cached: OwnershipRecord?

    init(store: OwnershipStore) {
        self.store = store
    }

    /// What ipvs-proxy owns now.
    mutating func current() throws -> OwnershipRecord {
        if let cached { return cached }
        let loaded = try store.load()
        cached = loaded
        return loaded
    }

    /// Writes the record, unless it is what the store already holds.
    mutating func record(_ record: OwnershipRecord) throws {
        guard record != cached else { return }
        try store.save(record)
        cached = record
    }

    /// Removes the record (after a cleanup left nothing owned).
    mutating func remove() throws {
        try store.remove()
        cached = OwnershipRecord()
    }
}
