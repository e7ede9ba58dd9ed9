import IPVSModel
import NetfilterModel
import ProxyRules

extension NFTablesPart {
    /// Every set of both tables against what `desired` wants in it (only the sets whose digest differs are compared
    /// element by element).
    func planEverything(_ desired: DesiredState, observed: State) -> Changes {
        let wanted = Self.elements(of: desired, rules: rules)
        var transaction = NFTTransaction()
        var after: [NFTFamily: TableState] = [:]
        for family in NFTFamily.allCases {
            let table = ProxyTable.make(family, rules: rules)
            let elements = wanted[family] ?? [:]
            let digest = table.skeleton.digest
            let wantedTable = TableState(skeletonDigest: digest, elements: elements)
            after[family] = wantedTable
            guard let current = observed.tables[family], current.skeletonDigest == digest,
                !current.hasUnreadableElements
            else {
                transaction.steps.append(.replace(table, elements: elements))
                continue
            }
            var deleting: [String: Set<SetElement>] = [:]
            var adding: [String: Set<SetElement>] = [:]
            // Only a set whose digest differs is compared element by element.
            for set in table.sets where current.digests[set.name] != wantedTable.digests[set.name] {
                let have = current.elements(of: set.name)
                let want = elements[set.name] ?? []
                deleting[set.name] = have.subtracting(want)
                adding[set.name] = want.subtracting(have)
            }
            if !deleting.isEmpty || !adding.isEmpty {
                transaction.steps.append(.changeElements(table, deleting: deleting, adding: adding))
            }
        }
        let confirmed = transaction.isEmpty && observed.wasListed ? observed.generation : nil
        return Changes(transaction: transaction, after: after, confirmedGeneration: confirmed)
    }

    /// Only the elements of what `touched` names, before and after: what the one state had there and the other
    /// has not is deleted or added. `nil` when the tables are not as ipvs-proxy makes them (then everything is
    /// planned, and a table replaced).
    func planTouched(_ touched: DesiredChanges, to desired: DesiredState, observed: State) -> Changes? {
        var before = ElementCollector(rules: rules)
        var after = ElementCollector(rules: rules)
        for key in touched.virtualServers.keys {
            if let server = touched.previous(key) { before.add(server) }
            if let server = desired.virtualServers[key] { after.add(server) }
        }
        for (address, had) in touched.serviceAddresses {
            if had { before.add(address) }
            if desired.serviceAddresses.contains(address) { after.add(address) }
        }
        if touched.healthChecks != desired.healthChecks {
            before.add(touched.healthChecks.values)
            after.add(desired.healthChecks.values)
        }
        if touched.nodePodNetworks != desired.nodePodNetworks {
            before.addLocalNetworks(touched.nodePodNetworks)
            after.addLocalNetworks(desired.nodePodNetworks)
        }
        // An element of a shared set may still be wanted by a virtual server the change did not touch.
        var stillWanted: ElementCollector?
        if before.hasShared(notIn: after) {
            var collector = ElementCollector(rules: rules, onlyShared: true)
            for server in desired.virtualServers.values { collector.add(server) }
            stillWanted = collector
        }
        var transaction = NFTTransaction()
        var tables = observed.tables
        for family in NFTFamily.allCases {
            let had = before.elements[family] ?? [:]
            let has = after.elements[family] ?? [:]
            // Most changes (an endpoint on another node) want the same elements after as before.
            guard had != has else { continue }
            let table = ProxyTable.make(family, rules: rules)
            guard var current = tables[family], current.skeletonDigest == table.skeleton.digest,
                !current.hasUnreadableElements
            else { return nil }
            var deleting: [String: Set<SetElement>] = [:]
            var adding: [String: Set<SetElement>] = [:]
            for set in Set(had.keys).union(has.keys) {
                let present = current.elements(of: set)
                let gone = (had[set] ?? []).subtracting(has[set] ?? []).filter {
                    present.contains($0) && stillWanted?.elements[family]?[set]?.contains($0) != true
                }
                let new = (has[set] ?? []).filter { !present.contains($0) }
                if !gone.isEmpty { deleting[set] = gone }
                if !new.isEmpty { adding[set] = new }
                if !gone.isEmpty || !new.isEmpty { current.change(set, deleting: gone, adding: new) }
            }
            if !deleting.isEmpty || !adding.isEmpty {
                transaction.steps.append(.changeElements(table, deleting: deleting, adding: adding))
                tables[family] = current
            }
        }
        return Changes(transaction: transaction, after: tables, confirmedGeneration: nil)
    }
}
