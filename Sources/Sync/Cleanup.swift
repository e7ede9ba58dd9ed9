import IPVSModel
import InterfaceModel
import NetfilterModel

extension Syncer {
    /// What a cleanup removed, or would remove.
    package struct CleanupReport: Sendable {
        package var deletedVirtualServers: [VirtualServerKey] = []
        package var unboundAddresses: [IPAddress] = []
        package var deletedLink = false
        /// The families whose nftables table `ipvs-proxy` was deleted.
        package var deletedTables: [NFTFamily] = []
        package var failures: [BatchFailure] = []
        package var addressFailures: [AddressChangeFailure] = []
        package var tableFailures: [NetfilterError] = []

        /// Every refusal, in words.
        package var failureDescriptions: [String] {
            failures.map(\.error.description) + addressFailures.map(\.error.description)
                + tableFailures.map(\.description)
        }
    }

    /// Removes everything ipvs-proxy owns: its virtual servers, the addresses it bound, the dummy link when
    /// nothing else is left on it, and its nftables tables (found by name, so even without the state folder).
    /// Touches nothing else.
    package func cleanup(dryRun: Bool = false) throws -> CleanupReport {
        try locked.withLock { locked in
            locked.memory = nil
            return try cleanup(dryRun: dryRun, ownership: &locked.ownership)
        }
    }

    private func cleanup(dryRun: Bool, ownership: inout OwnershipLedger) throws -> CleanupReport {
        var report = CleanupReport()
        var record = try ownership.current()
        let ipvs = table.connection
        let interfaces = addresses.connection
        let present = Set(try ipvs.table().map(\.server.key))
        report.deletedVirtualServers = record.virtualServers.keys.filter { present.contains($0) }.sorted()
        let link = try interfaces.link(named: addresses.linkName)
        let onLink = try link.map { link in try interfaces.addresses().filter { $0.linkIndex == link.index } } ?? []
        let ours = onLink.filter { record.addresses.contains($0.address) }
        report.unboundAddresses = ours.map(\.address).sorted()
        let othersRemain = onLink.contains { !record.addresses.contains($0.address) && !$0.address.isLinkLocal }
        report.deletedLink = link?.kind == "dummy" && !othersRemain
        let tables = try NFTFamily.allCases.filter { try nftables.connection.table($0, named: ProxyTable.name) != nil }
        report.deletedTables = tables
        guard !dryRun else { return report }

        if !tables.isEmpty {
            let deletion = NFTTransaction(tables.map { .delete(ProxyTable.make($0, rules: nftables.rules)) })
            do {
                try nftables.connection.commit(deletion, dryRun: false)
            } catch {
                report.tableFailures = [error]
            }
        }
        nftables.ledger?.forget()

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
            try ownership.remove()
        } else {
            try ownership.record(record)
        }
        return report
    }
}
