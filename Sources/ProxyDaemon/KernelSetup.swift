import Foundation
import HostSystem
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
    /// The conntrack table's size and TCP timeouts.
    package var conntrack = ConntrackSizing()
    /// The daemon's own `oom_score_adj`; `nil` leaves it.
    package var oomScoreAdjustment: Int?

    package init() {}

    /// The IPVS settings that make its connections work with netfilter and follow real servers that go; a
    /// one-shot `sync` sets them too.
    package static let ipvsSysctls = [
        // Connection tracking for IPVS connections: without it netfilter cannot masquerade what IPVS forwards.
        ("net/ipv4/vs/conntrack", "1"),
        // Drop connections to a deleted real server at once, instead of letting them time out (a UDP client with
        // one source port would otherwise keep sending to the deleted one until then).
        ("net/ipv4/vs/expire_nodest_conn", "1"),
        // Expire persistence templates of a quiesced (weight 0) real server.
        ("net/ipv4/vs/expire_quiescent_template", "1"),
    ]

    /// The sysctls to write, in order.
    package var sysctls: [(String, String)] {
        var settings = Self.ipvsSysctls + [("net/ipv4/ip_forward", "1")]
        if strictARP {
            // Answer ARP only for addresses on the asking interface: service addresses stay off the wire.
            settings += [("net/ipv4/conf/all/arp_ignore", "1"), ("net/ipv4/conf/all/arp_announce", "2")]
        }
        return settings
    }

    /// Applies the settings; a sysctl that cannot be written is logged and skipped, as kube-proxy does.
    /// - Parameter inInitialNamespace: The conntrack table's size can be set from the initial network namespace
    ///   only.
    package func apply(settings: KernelSettings, ipvs: IPVSHandle, inInitialNamespace: Bool, logger: Logger) throws {
        var sysctls = self.sysctls + conntrack.timeoutSysctls
        if inInitialNamespace {
            sysctls += conntrack.sizeSettings(cpus: ProcessInfo.processInfo.activeProcessorCount)
        } else if conntrack.maximum(cpus: 1) > 0 {
            logger.info(
                "not in the initial network namespace: the conntrack table's size (nf_conntrack_max, hash size) is left as it is"
            )
        }
        if let oomScoreAdjustment {
            do {
                try "\(oomScoreAdjustment)".write(
                    toFile: "/proc/self/oom_score_adj", atomically: false, encoding: .utf8)
            } catch {
                logger.warning(
                    "could not set oom_score_adj", metadata: ["value": "\(oomScoreAdjustment)", "error": "\(error)"])
            }
        }
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

/// The conntrack table's size and TCP timeouts, as kube-proxy's `--conntrack-*` flags set them.
package struct ConntrackSizing: Sendable {
    /// Connections per CPU; 0 leaves the size alone.
    package var maxPerCore = 32768
    package var minimum = 131072
    /// 0 leaves the kernel's timeout.
    package var tcpEstablishedTimeout: Duration = .seconds(86400)
    package var tcpCloseWaitTimeout: Duration = .seconds(3600)
    /// Accept out-of-window TCP packets instead of marking them INVALID.
    package var tcpBeLiberal = false
    /// 0 leaves the kernel's timeout.
    package var udpTimeout: Duration = .zero
    package var udpStreamTimeout: Duration = .zero

    package init(
        maxPerCore: Int = 32768, minimum: Int = 131072, tcpEstablishedTimeout: Duration = .seconds(86400),
        tcpCloseWaitTimeout: Duration = .seconds(3600)
    ) {
        self.maxPerCore = maxPerCore
        self.minimum = minimum
        self.tcpEstablishedTimeout = tcpEstablishedTimeout
        self.tcpCloseWaitTimeout = tcpCloseWaitTimeout
    }

    /// The table size for `cpus` CPUs: `maxPerCore` times the CPUs, at least `minimum`; 0 for none.
    package func maximum(cpus: Int) -> Int {
        maxPerCore > 0 ? max(maxPerCore * cpus, minimum) : 0
    }

    /// `nf_conntrack_max`, and the hash size at a quarter of it when it is smaller (kube-proxy's rule).
    package func sizeSettings(cpus: Int, currentHashSize: Int? = ConntrackSizing.currentHashSize()) -> [(
        String, String
    )] {
        let maximum = maximum(cpus: cpus)
        guard maximum > 0 else { return [] }
        var settings = [("net/netfilter/nf_conntrack_max", "\(maximum)")]
        if let currentHashSize, currentHashSize < maximum / 4 {
            settings.append(("/sys/module/nf_conntrack/parameters/hashsize", "\(maximum / 4)"))
        }
        return settings
    }

    /// The TCP and UDP timeouts and TCP liberal mode, in the proxy's network namespace.
    package var timeoutSysctls: [(String, String)] {
        var settings: [(String, String)] = []
        if tcpEstablishedTimeout > .zero {
            settings.append(
                ("net/netfilter/nf_conntrack_tcp_timeout_established", "\(tcpEstablishedTimeout.components.seconds)"))
        }
        if tcpCloseWaitTimeout > .zero {
            settings.append(
                ("net/netfilter/nf_conntrack_tcp_timeout_close_wait", "\(tcpCloseWaitTimeout.components.seconds)"))
        }
        if tcpBeLiberal { settings.append(("net/netfilter/nf_conntrack_tcp_be_liberal", "1")) }
        if udpTimeout > .zero {
            settings.append(("net/netfilter/nf_conntrack_udp_timeout", "\(udpTimeout.components.seconds)"))
        }
        if udpStreamTimeout > .zero {
            settings.append(("net/netfilter/nf_conntrack_udp_timeout_stream", "\(udpStreamTimeout.components.seconds)"))
        }
        return settings
    }

    package static func currentHashSize() -> Int? {
        (try? String(contentsOfFile: "/sys/module/nf_conntrack/parameters/hashsize", encoding: .utf8)).flatMap {
            Int($0.filter(\.isNumber))
        }
    }
}
