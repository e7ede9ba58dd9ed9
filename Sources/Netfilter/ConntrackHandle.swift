import CNetlink
import InternetAddress
import NetfilterModel
import ShimDumps
import Synchronization
import SystemPackage

/// A connection to the kernel's connection tracking table of one network namespace (ctnetlink).
///
/// Calls are serialized, so one handle may be shared between tasks.
public final class ConntrackHandle: Sendable {
    // Used only with `lock` held.
    private nonisolated(unsafe) let handle: OpaquePointer
    private let lock = Mutex(())
    private let dumps = DumpRereader()

    public init(networkNamespacePath: String? = nil) throws(NetfilterError) {
        var handle: OpaquePointer?
        let result = cnetlink_conntrack_open(networkNamespacePath, &handle)
        guard result == 0, let handle else {
            let place = networkNamespacePath.map { " in network namespace \($0)" } ?? ""
            throw NetfilterError(operation: "open conntrack\(place)", code: result)
        }
        self.handle = handle
    }

    deinit {
        cnetlink_conntrack_close(handle)
    }

    /// How many of this handle's dumps the kernel marked interrupted (each was read again from the start).
    public var interruptedDumps: Int { dumps.interruptedDumps }

    /// Every entry of one family with a protocol in `protocols` (IP protocol numbers). Entries the shim cannot
    /// read whole (an address missing) are left out: they are not the proxy's to delete.
    /// - Throws: ``NetfilterError``; ``NetfilterError/Reason/dumpInterrupted`` when the table kept changing
    ///   through every read.
    public func entries(family: AddressFamily, protocols: Set<UInt8>) throws(NetfilterError) -> [ConntrackEntry] {
        struct Dump {
            var protocols: Set<UInt8>
            var entries: [ConntrackEntry] = []
        }
        let (result, dump) = lock.withLock { _ in
            dumps.gather(startingWith: Dump(protocols: protocols)) { dump in
                cnetlink_conntrack_dump(
                    handle, UInt8(family.rawValue),
                    { entry, context in
                        let dump = context!.assumingMemoryBound(to: Dump.self)
                        let entry = entry!.pointee
                        if dump.pointee.protocols.contains(entry.protocol) {
                            dump.pointee.entries.append(ConntrackEntry(entry))
                        }
                        return 0
                    }, dump)
            }
        }
        if result < 0 { throw NetfilterError(operation: "dump conntrack entries", code: result) }
        return dump.entries
    }

    /// Deletes entries in one batch. An entry that is gone already counts as deleted.
    /// - Returns: The entries the kernel refused to delete, with its errors.
    public func delete(_ entries: [ConntrackEntry]) throws(NetfilterError) -> [(ConntrackEntry, NetfilterError)] {
        guard !entries.isEmpty else { return [] }
        var failures: [(index: Int, code: Int32)] = []
        let result = lock.withLock { _ -> Int32 in
            let begun = cnetlink_conntrack_batch_begin(handle)
            guard begun == 0 else { return begun }
            for entry in entries {
                var cEntry = entry.cEntry
                let appended = cnetlink_conntrack_batch_append_delete(handle, &cEntry)
                guard appended == 0 else { return appended }
            }
            return withUnsafeMutablePointer(to: &failures) { failures in
                cnetlink_conntrack_batch_commit(
                    handle,
                    { index, error, context in
                        context!.assumingMemoryBound(to: [(index: Int, code: Int32)].self).pointee.append(
                            (Int(index), error))
                    }, failures)
            }
        }
        if result < 0 { throw NetfilterError(operation: "delete \(entries.count) conntrack entries", code: result) }
        return failures.filter { $0.code != -Errno.noSuchFileOrDirectory.rawValue }.map { failure in
            let entry = entries[failure.index]
            return (entry, NetfilterError(operation: "delete conntrack entry \(entry)", code: failure.code))
        }
    }
}

extension ConntrackEntry {
    init(_ entry: cnetlink_conntrack_entry) {
        let family = AddressFamily(rawValue: UInt16(entry.family)) ?? .ipv4
        func tuple(_ tuple: cnetlink_conntrack_tuple) -> ConntrackTuple {
            let source = withUnsafeBytes(of: tuple.source) { IPAddress(family: family, bytes: $0) }
            let destination = withUnsafeBytes(of: tuple.destination) { IPAddress(family: family, bytes: $0) }
            return ConntrackTuple(
                source: source, destination: destination, sourcePort: tuple.source_port,
                destinationPort: tuple.destination_port)
        }
        self.init(transportProtocol: entry.protocol, original: tuple(entry.original), reply: tuple(entry.reply))
    }

    var cEntry: cnetlink_conntrack_entry {
        var entry = cnetlink_conntrack_entry()
        entry.family = UInt8(family.rawValue)
        entry.protocol = transportProtocol
        func fill(_ tuple: ConntrackTuple, into target: inout cnetlink_conntrack_tuple) {
            withUnsafeMutableBytes(of: &target.source) { bytes in tuple.source.withBytes { bytes.copyMemory(from: $0) }
            }
            withUnsafeMutableBytes(of: &target.destination) { bytes in
                tuple.destination.withBytes { bytes.copyMemory(from: $0) }
            }
            target.source_port = tuple.sourcePort
            target.destination_port = tuple.destinationPort
        }
        fill(original, into: &entry.original)
        fill(reply, into: &entry.reply)
        return entry
    }
}
