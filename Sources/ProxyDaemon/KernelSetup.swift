import IPVS
import IPVSModel
import Logging

/// The kernel settings kube-proxy's IPVS mode makes, applied in the proxy's network namespace.
package struct KernelSetup: Sendable {
    package var strictARP = false
    /// IPVS connection timeouts; zero leaves the kernel's value.
    package var tcpTimeout: Duration = .zero
    package var tcpFinTimeout: Duration = .zero
    package var udpTimeout: Duration = .zero

    package init() {}

    /// The sysctls to write, in order.
    package var sysctls: [(String, String)] {
        var settings = [
            // Connection tracking for IPVS connections (kube-proxy needs it for its SNAT rules).
            ("net/ipv4/vs/conntrack", "1"),
            // Drop connections to a deleted real server at once, instead of letting them time out.
            ("net/ipv4/vs/expire_nodest_conn", "1"),
            // Expire persistence templates of a quiesced (weight 0) real server.
            ("net/ipv4/vs/expire_quiescent_template", "1"),
            ("net/ipv4/ip_forward", "1"),
        ]
        if strictARP {
            // Answer ARP only for addresses on the asking interface: service addresses stay off the wire.
            settings += [("net/ipv4/conf/all/arp_ignore", "1"), ("net/ipv4/conf/all/arp_announce", "2")]
        }
        return settings
    }

    /// Applies the settings; a sysctl that cannot be written is logged and skipped, as kube-proxy does.
    package func apply(settings: KernelSettings, ipvs: IPVSHandle, logger: Logger) throws {
        for (name, value) in sysctls {
            do {
                try settings.set(name, to: value)
            } catch {
                logger.warning("could not set sysctl", metadata: ["name": "\(name)", "error": "\(error)"])
            }
        }
        let timeouts = IPVSTimeouts(
            tcp: UInt32(tcpTimeout.components.seconds), tcpFin: UInt32(tcpFinTimeout.components.seconds),
            udp: UInt32(udpTimeout.components.seconds))
        if timeouts != IPVSTimeouts() {
            try ipvs.setTimeouts(timeouts)
            logger.info("set IPVS timeouts", metadata: ["timeouts": "\(timeouts)"])
        }
    }
}
