import Foundation
import IPVSModel
import InternetAddress

extension KubeProxyConfiguration {
    /// The detect-local modes kube-proxy has.
    package static let detectLocalModes = ["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"]

    /// Checks the values ipvs-proxy uses, as kube-proxy's validation does.
    /// - Parameter file: Names the file in errors.
    /// - Throws: ``ConfigurationFileError`` naming the field.
    package func validate(file: String) throws(ConfigurationFileError) {
        func problem(_ path: String, _ reason: String) -> ConfigurationFileError {
            ConfigurationFileError(file: file, path: path, reason: reason)
        }
        if !ipvs.scheduler.isEmpty {
            do {
                _ = try Scheduler(validating: ipvs.scheduler)
            } catch {
                throw problem("ipvs.scheduler", "\(error)")
            }
        }
        for (index, text) in ipvs.excludeCIDRs.enumerated() where IPNetwork(text) == nil {
            throw problem("ipvs.excludeCIDRs[\(index)]", "'\(text)' is not a network in CIDR notation")
        }
        let clusterNetworks = clusterCIDRs
        for text in clusterNetworks where IPNetwork(text) == nil {
            throw problem("clusterCIDR", "'\(text)' is not a network in CIDR notation (10.244.0.0/16)")
        }
        let families = clusterNetworks.compactMap { IPNetwork($0)?.family }
        if Set(families).count != families.count {
            throw problem("clusterCIDR", "at most one network per family (one of each for dual-stack)")
        }
        for (index, text) in nodePortAddresses.enumerated() {
            if text == "primary" {
                if nodePortAddresses.count > 1 { throw problem("nodePortAddresses", "'primary' stands alone") }
            } else if IPNetwork(text) == nil {
                throw problem(
                    "nodePortAddresses[\(index)]", "'\(text)' is not a network in CIDR notation or 'primary'")
            }
        }
        guard Self.detectLocalModes.contains(detectLocalMode) else {
            throw problem(
                "detectLocalMode", "'\(detectLocalMode)' is not one of \(Self.detectLocalModes.joined(separator: ", "))"
            )
        }
        if detectLocalMode == "BridgeInterface" && detectLocal.bridgeInterface.isEmpty {
            throw problem("detectLocal.bridgeInterface", "is needed with detectLocalMode BridgeInterface")
        }
        if detectLocalMode == "InterfaceNamePrefix" && detectLocal.interfaceNamePrefix.isEmpty {
            throw problem("detectLocal.interfaceNamePrefix", "is needed with detectLocalMode InterfaceNamePrefix")
        }
        if let bit = iptables.masqueradeBit, !(0...31).contains(bit) {
            throw problem("iptables.masqueradeBit", "\(bit) is not a bit of the mark (0-31)")
        }
        for (path, address) in [("healthzBindAddress", healthzBindAddress), ("metricsBindAddress", metricsBindAddress)]
        where HostPort(address) == nil {
            throw problem(path, "'\(address)' is not host:port")
        }
        if IPAddress(bindAddress) == nil {
            throw problem("bindAddress", "'\(bindAddress)' is not an IP address")
        }
        for (path, value) in [("conntrack.maxPerCore", conntrack.maxPerCore), ("conntrack.min", conntrack.min)] {
            if let value, value < 0 { throw problem(path, "\(value) is below 0") }
        }
        if let score = oomScoreAdj, !(-1000...1000).contains(score) {
            throw problem("oomScoreAdj", "\(score) is not within -1000 to 1000")
        }
        if ipvs.minSyncPeriod > ipvs.syncPeriod {
            throw problem(
                "ipvs.minSyncPeriod", "\(ipvs.minSyncPeriod) is longer than ipvs.syncPeriod \(ipvs.syncPeriod)")
        }
    }

    /// `clusterCIDR`'s networks, as written.
    package var clusterCIDRs: [String] {
        clusterCIDR.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
