import Foundation
import IPVS
import SystemPackage
import Translation

/// What a sync did, or (in a dry run) would do.
public struct SyncReport: Sendable {
    public var dryRun: Bool
    /// The IPVS operations planned, in order.
    public var operations: [TableOperation] = []
    /// Service addresses bound to and unbound from the dummy link.
    public var addressesBound: [IPAddress] = []
    public var addressesUnbound: [IPAddress] = []
    /// Desired virtual servers left alone because something else owns their key.
    public var blocked: [VirtualServerKey: ServicePortName] = [:]
    /// Real servers draining at weight 0.
    public var draining = 0
    /// Operations and address changes the kernel refused.
    public var failures: [BatchFailure] = []
    public var addressFailures: [AddressChangeFailure] = []
    /// How many times the table was planned (more than once after races with other writers).
    public var attempts = 0
    /// Whether the whole table was read from the kernel (rather than remembered).
    public var fullDump = false
    /// How many virtual servers' real servers were read on their own (an incremental sync's only reads).
    public var realServerReads = 0
    /// How long each phase took, in order.
    public var timings: [(phase: String, duration: Duration)] = []

    mutating func time<Result>(_ phase: String, _ body: () throws -> Result) rethrows -> Result {
        let start = ContinuousClock.now
        defer { timings.append((phase, ContinuousClock.now - start)) }
        return try body()
    }

    /// Successful (or, in a dry run, planned) operations by kind.
    public var counts: [TableOperation.Kind: Int] {
        var counts: [TableOperation.Kind: Int] = [:]
        let failed = Set(failures.map(\.index))
        for (index, operation) in operations.enumerated() where !failed.contains(index) {
            counts[operation.kind, default: 0] += 1
        }
        return counts
    }

    /// Kernel write operations sent, IPVS and addresses together.
    public var writeOperations: Int { operations.count + addressesBound.count + addressesUnbound.count }
}

/// Brings the kernel to a desired state: reads the table, plans against what ipvs-proxy owns, records
/// ownership, applies the difference as one batch, and binds or unbinds service addresses on the dummy link.
///
/// A syncer remembers the table as it left it. A full sync reads the whole table (this repairs changes made
/// by others); an incremental one plans against that memory and reads only the real servers of the virtual
/// servers whose endpoints changed (their connection counts decide draining), so an endpoint change costs
/// its own operations and no full dump.
public final class Syncer: @unchecked Sendable {
    public let ipvs: IPVSHandle
    public let interfaces: InterfaceHandle
    public let store: OwnershipStore
    /// The dummy link that holds service addresses.
    public let linkName: String

    /// How many times a sync re-reads and re-plans after races with another writer.
    static let maximumAttempts = 3

    /// The table after the last sync, when it is known to be exact.
    private var model: ObservedTable?
    /// The desired virtual servers of the last sync, to see what changed since.
    private var lastDesired: [VirtualServerKey: DesiredVirtualServer] = [:]
    /// Virtual servers with real servers draining at weight 0.
    public private(set) var drainingVirtualServers: Set<VirtualServerKey> = []
    /// The service addresses of the last sync, when they were all bound as wanted.
    private var addressesInPlace: Set<IPAddress>?
    private var record: OwnershipRecord?

    public init(ipvs: IPVSHandle, interfaces: InterfaceHandle, store: OwnershipStore, linkName: String = "kube-ipvs0") {
        self.ipvs = ipvs
        self.interfaces = interfaces
        self.store = store
        self.linkName = linkName
    }

    /// The kernel's table keyed by virtual server. A dump is not a snapshot and may repeat an entry.
    public func observedTable() throws -> ObservedTable {
        var table: ObservedTable = [:]
        for state in try ipvs.table() { table[state.server.key] = state }
        return table
    }

    /// What ipvs-proxy owns, from memory or from its record.
    public func ownership() throws -> OwnershipRecord {
        if let record { return record }
        let loaded = try store.load()
        record = loaded
        return loaded
    }

    private func save(_ updated: OwnershipRecord) throws {
        guard updated != record else { return }
        try store.save(updated)
        record = updated
    }

    /// Forgets the remembered table, so the next sync reads the kernel's in full.
    public func forgetTable() {
        model = nil
        addressesInPlace = nil
    }

    /// - Parameters:
    ///   - full: Read the whole table (and the link's addresses) instead of trusting memory.
    ///   - table: The whole table, read just before (by a caller that read it while it parsed its input).
    public func sync(
        _ desired: DesiredState, full: Bool = true, dryRun: Bool = false, table prefetched: ObservedTable? = nil
    ) throws -> SyncReport {
        var report = SyncReport(dryRun: dryRun)
        var current = try ownership()
        var addresses: AddressWork?
        if full || addressesInPlace != desired.serviceAddresses || dryRun {
            let work = try report.time("read addresses") {
                try prepareAddresses(desired.serviceAddresses, owned: current.addresses, dryRun: dryRun)
            }
            report.addressesBound = work.plan.bind
            report.addressesUnbound = work.plan.unbind
            if work.plan.isEmpty {
                if !dryRun { addressesInPlace = desired.serviceAddresses }
            } else if !dryRun {
                addresses = work
            }
        }
        var observed =
            try prefetched
            ?? (full ? nil : try refreshedModel(for: desired, into: &report))
        for attempt in 1...Self.maximumAttempts {
            report.attempts = attempt
            let table = try observed ?? report.time("read table") { try observedTable() }
            let plan = report.time("plan") {
                Planner.plan(desired: desired, observed: table, owned: current.virtualServers)
            }
            report.operations = plan.operations
            report.blocked = plan.blocked
            report.draining = plan.draining.count
            report.fullDump = observed == nil
            if dryRun { break }

            // Recorded first: a crash during the batch must not leave a virtual server or an address that
            // nobody owns.
            var during = current
            during.virtualServers = plan.ownedDuring(before: current.virtualServers)
            if let addresses { during.addresses.formUnion(addresses.plan.bind) }
            try save(during)
            // Addresses are bound on another thread while the kernel takes the IPVS batch: rtnetlink and IPVS
            // take different locks in the kernel, and binding thousands of addresses is the slower of the two.
            let binding = addresses.map { work in Concurrently { try self.interfaces.apply(work.changes) } }
            addresses = nil
            let failures: [BatchFailure]
            do {
                failures = plan.operations.isEmpty ? [] : try report.time("apply") { try ipvs.apply(plan.operations) }
            } catch {
                // Any part of the batch may have been applied (ENOBUFS, say): only a full read can tell, so
                // what may have been made stays owned, and the next sync reads the whole table.
                forgetTable()
                if let binding, let addressFailures = try? binding.result() {
                    during.addresses = finishAddresses(
                        report.addressesBound, report.addressesUnbound, failures: addressFailures,
                        owned: during.addresses, into: &report)
                    try? save(during)
                }
                throw error
            }
            current.virtualServers = Self.owned(after: plan, failures: failures, before: current.virtualServers)
            if let binding {
                let work = binding
                let addressFailures = try report.time("wait for addresses") { try work.result() }
                current.addresses = finishAddresses(
                    report.addressesBound, report.addressesUnbound, failures: addressFailures,
                    owned: during.addresses, into: &report)
                addressesInPlace = report.addressFailures.isEmpty ? desired.serviceAddresses : nil
            }
            try save(current)
            report.failures = failures
            if failures.isEmpty {
                var next = table
                for operation in plan.operations { next.apply(operation) }
                model = next
                drainingVirtualServers = Set(plan.draining.map(\.0))
            } else {
                model = nil
            }
            // A virtual server that appeared or vanished between the read and the batch is a race with
            // another writer, not a failure: read again and plan again.
            if failures.isEmpty || !failures.allSatisfy(Self.isRace) { break }
            observed = nil
        }
        if !dryRun { lastDesired = desired.virtualServers }
        return report
    }

    /// The remembered table, with fresh real servers for virtual servers whose endpoints changed or that are
    /// draining; `nil` when there is no trustworthy memory.
    private func refreshedModel(for desired: DesiredState, into report: inout SyncReport) throws -> ObservedTable? {
        guard var table = model else { return nil }
        let start = ContinuousClock.now
        defer { report.timings.append(("read changed real servers", ContinuousClock.now - start)) }
        for (key, wanted) in desired.virtualServers where table[key] != nil {
            if lastDesired[key]?.realServers != wanted.realServers || drainingVirtualServers.contains(key) {
                table[key]?.realServers = try ipvs.realServers(of: key)
                report.realServerReads += 1
            }
        }
        return table
    }

    /// Address changes worked out and ready to send.
    struct AddressWork {
        var plan: AddressPlan
        var changes: [AddressChange]
    }

    /// Reads the dummy link's addresses and plans the changes; creates the link when addresses must be bound
    /// and it is missing.
    private func prepareAddresses(_ desired: Set<IPAddress>, owned: Set<IPAddress>, dryRun: Bool) throws -> AddressWork
    {
        var link = try interfaces.link(named: linkName)
        let onLink =
            try link.map { link in Set(try interfaces.addresses().filter { $0.linkIndex == link.index }.map(\.address))
            } ?? []
        let plan = AddressPlan(desired: desired, onLink: onLink, owned: owned)
        guard !dryRun, !plan.isEmpty else { return AddressWork(plan: plan, changes: []) }
        if link == nil {
            let index = try interfaces.addDummyLink(named: linkName)
            // IPv6 addresses on a link that is down stay tentative and get no local route.
            try interfaces.setLinkUp(index: index)
            link = try interfaces.link(named: linkName)
        }
        guard let link else { return AddressWork(plan: plan, changes: []) }
        let changes =
            plan.bind.map { AddressChange.bind(InterfaceAddress(linkIndex: link.index, address: $0)) }
            + plan.unbind.map { AddressChange.unbind(InterfaceAddress(linkIndex: link.index, address: $0)) }
        return AddressWork(plan: plan, changes: changes)
    }

    /// The addresses owned after a batch of address changes, and its real failures in the report.
    private func finishAddresses(
        _ bound: [IPAddress], _ unbound: [IPAddress], failures: [AddressChangeFailure], owned: Set<IPAddress>,
        into report: inout SyncReport
    ) -> Set<IPAddress> {
        var owned = owned
        // Already as wanted: an address bound by someone else meanwhile, or one already gone.
        let real = failures.filter {
            switch ($0.change, $0.error.errno) {
            case (.bind, .fileExists?), (.unbind, .addressNotAvailable?): false
            default: true
            }
        }
        let failed = Set(real.map(\.change.address.address))
        for address in bound where failed.contains(address) { owned.remove(address) }
        for address in unbound where !failed.contains(address) { owned.remove(address) }
        report.addressFailures = real
        return owned
    }

    /// What is owned after a batch: the plan's result, except where an operation on a whole virtual server
    /// failed.
    static func owned(
        after plan: Plan, failures: [BatchFailure], before: [VirtualServerKey: ServicePortName]
    ) -> [VirtualServerKey: ServicePortName] {
        var owned = plan.ownedAfter
        for failure in failures {
            switch failure.operation {
            case .addVirtualServer(let server):
                // Made by someone else meanwhile (EEXIST), or refused: not ours, unless it was before.
                owned[server.key] = before[server.key]
            case .deleteVirtualServer(let key) where failure.error.errno != .noSuchProcess:
                owned[key] = before[key]
            default:
                break
            }
        }
        return owned
    }

    /// Whether a failure means the table changed under the plan (rather than a refusal that would repeat).
    static func isRace(_ failure: BatchFailure) -> Bool {
        switch (failure.operation.kind, failure.error.errno) {
        case (_, .fileExists?), (_, .noSuchProcess?): true
        case (.editRealServer, .noSuchFileOrDirectory?), (.deleteRealServer, .noSuchFileOrDirectory?): true
        default: false
        }
    }

    // MARK: - Cleanup

    /// What a cleanup removed, or would remove.
    public struct CleanupReport: Sendable {
        public var deletedVirtualServers: [VirtualServerKey] = []
        public var unboundAddresses: [IPAddress] = []
        public var deletedLink = false
        public var failures: [BatchFailure] = []
        public var addressFailures: [AddressChangeFailure] = []
    }

    /// Removes everything ipvs-proxy owns: its virtual servers, the addresses it bound, and the dummy link
    /// when nothing else is left on it. Touches nothing else.
    public func cleanup(dryRun: Bool = false) throws -> CleanupReport {
        var report = CleanupReport()
        var record = try ownership()
        forgetTable()
        let observed = try observedTable()
        report.deletedVirtualServers = record.virtualServers.keys.filter { observed[$0] != nil }.sorted()
        let link = try interfaces.link(named: linkName)
        let onLink = try link.map { link in try interfaces.addresses().filter { $0.linkIndex == link.index } } ?? []
        let ours = onLink.filter { record.addresses.contains($0.address) }
        report.unboundAddresses = ours.map(\.address).sorted()
        let othersRemain = onLink.contains { !record.addresses.contains($0.address) && !$0.address.isLinkLocal }
        report.deletedLink = link?.kind == "dummy" && !othersRemain
        guard !dryRun else { return report }

        report.failures = try ipvs.apply(report.deletedVirtualServers.map(TableOperation.deleteVirtualServer))
            .filter { $0.error.errno != .noSuchProcess }
        let stillThere = Set(report.failures.map(\.operation.virtualServerKey))
        record.virtualServers = record.virtualServers.filter { stillThere.contains($0.key) }
        report.addressFailures = try interfaces.apply(ours.map(AddressChange.unbind))
            .filter { $0.error.errno != .addressNotAvailable }
        let notUnbound = Set(report.addressFailures.map(\.change.address.address))
        record.addresses = record.addresses.filter { notUnbound.contains($0) }
        if report.deletedLink, report.addressFailures.isEmpty, let link {
            try interfaces.deleteLink(index: link.index)
        }
        if record.isEmpty {
            try store.remove()
            self.record = OwnershipRecord()
        } else {
            try save(record)
        }
        return report
    }
}

/// The node's addresses, as the proxy uses them.
public struct NodeAddresses: Sendable {
    /// Where NodePort services listen: every address of the node's interfaces except loopback, link-local
    /// and the dummy link's.
    public var nodePortAddresses: [IPAddress]
    /// Every address of the node's interfaces except the dummy link's.
    public var localAddresses: Set<IPAddress>

    public static func discover(_ interfaces: InterfaceHandle, excludingLink linkName: String) throws -> NodeAddresses {
        let links = try interfaces.links()
        let excluded = Set(links.filter { $0.name == linkName }.map(\.index))
        let loopbacks = Set(links.filter(\.isLoopback).map(\.index))
        let addresses = try interfaces.addresses().filter { !excluded.contains($0.linkIndex) }
        let nodePort = addresses.filter {
            !loopbacks.contains($0.linkIndex) && !$0.address.isLoopback && !$0.address.isLinkLocal
        }.map(\.address)
        return NodeAddresses(
            nodePortAddresses: Array(Set(nodePort)).sorted(), localAddresses: Set(addresses.map(\.address)))
    }
}

/// Runs work on a thread of its own; ``result()`` waits for it.
public final class Concurrently<Value>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var outcome: Result<Value, any Error>?

    public init(_ work: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [self] in
            outcome = Result { try work() }
            done.signal()
        }
        thread.start()
    }

    public func result() throws -> Value {
        done.wait()
        return try outcome!.get()
    }
}
