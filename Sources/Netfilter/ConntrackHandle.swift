import CNetlink
import InternetAddress
import KernelShim
import NetfilterModel

/// A connection to the kernel's connection tracking table of one network namespace (ctnetlink).
///
/// Calls are serialized, so one handle may be shared between tasks.
public final class ConntrackHandle: Sendable {
    private let shim: ShimHandle<NetfilterError>

    public init(networkNamespacePath: String? = nil) throws(NetfilterError) {
        shim = try ShimHandle(
            "open conntrack", networkNamespacePath: networkNamespacePath,
            open: { cnetlink_conntrack_open(networkNamespacePath, $0) }, close: { cnetlink_conntrack_close($0) })
    }

    /// How many of this handle's dumps the kernel marked interrupted (each was read again from the start).
    public var interruptedDumps: Int { shim.interruptedDumps }

    /// Every entry of one family with a protocol in `protocols` (IP protocol numbers). Entries the shim cannot
    /// read whole (an address missing) are left out: they are not the proxy's to delete.
    /// - Throws: ``NetfilterError``; `KernelFailure.dumpInterrupted` when the table kept changing through every
    ///   read.
    public func entries(family: AddressFamily, protocols: Set<UInt8>) throws(NetfilterError) -> [ConntrackEntry] {
        struct Dump {
            var protocols: Set<UInt8>
            var entries: [ConntrackEntry] = []
        }
        return try shim.dump("dump conntrack entries", startingWith: Dump(protocols: protocols)) { handle, dump in
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
        }.entries
    }

    /// Deletes entries in one batch. An entry that is gone already counts as deleted.
    /// - Returns: The entries the kernel refused to delete, with its errors.
    public func delete(_ entries: [ConntrackEntry]) throws(NetfilterError) -> [(ConntrackEntry, NetfilterError)] {
        guard !entries.isEmpty else { return [] }
        let refusals = try shim.batch(
            "delete \(entries.count) conntrack entries", entries,
            begin: { cnetlink_conntrack_batch_begin($0) },
            append: { handle, entry in
                var cEntry = entry.cEntry
                return cnetlink_conntrack_batch_append_delete(handle, &cEntry)
            },
            commit: { cnetlink_conntrack_batch_commit($0, $1, $2) })
        return refusals.filter { $0.error != .kernel(.noSuchFileOrDirectory) }.map { refusal in
            let entry = entries[refusal.index]
            return (entry, NetfilterError(operation: "delete conntrack entry \(entry)", refusal.error))
        }
    }
}

extension ConntrackEntry {
    init(_ entry: cnetlink_conntrack_entry) {
        let family = UInt16(entry.family)
        func tuple(_ tuple: cnetlink_conntrack_tuple) -> ConntrackTuple {
            ConntrackTuple(
                source: IPAddress(family: family, cBytes: tuple.source),
                destination: IPAddress(family: family, cBytes: tuple.destination), sourcePort: tuple.source_port,
                destinationPort: tuple.destination_port)
        }
        self.init(transportProtocol: entry.protocol, original: tuple(entry.original), reply: tuple(entry.reply))
    }

    var cEntry: cnetlink_conntrack_entry {
        var entry = cnetlink_conntrack_entry()
        entry.family = UInt8(family.rawValue)
        entry.protocol = transportProtocol
        func fill(_ tuple: ConntrackTuple, into target: inout cnetlink_conntrack_tuple) {
            tuple.source.copy(into: &target.source)
            tuple.destination.copy(into: &target.destination)
            target.source_port = tuple.sourcePort
            target.destination_port = tuple.destinationPort
        }
        fill(original, into: &entry.original)
        fill(reply, into: &entry.reply)
        return entry
    }
}
