import Foundation
import IPVSModel
import Testing

/// A Service in front of every backend of a lab, as manifests.
private func manifests(
    clusterIP: String = "10.96.100.1", clusterIPv6: String? = nil, protocol transportProtocol: String = "TCP",
    backends: Int, scheduler: String? = nil, affinity: Bool = false
) -> String {
    let annotations = scheduler.map { "  annotations:\n    ipvs-proxy.io/scheduler: \($0)\n" } ?? ""
    let ips = [clusterIP] + (clusterIPv6.map { [$0] } ?? [])
    var text = """
        apiVersion: v1
        kind: Service
        metadata:
          name: echo
          namespace: lab
        \(annotations)spec:
          clusterIP: \(clusterIP)
          clusterIPs: [\(ips.joined(separator: ", "))]
          sessionAffinity: \(affinity ? "ClientIP" : "None")
          ports:
          - name: echo
            port: 80
            protocol: \(transportProtocol)
            targetPort: echo

        """
    let families =
        [("IPv4", { (i: Int) in "10.200.\(i).2" })]
        + (clusterIPv6 == nil ? [] : [("IPv6", { (i: Int) in "fd02:\(i)::2" })])
    for (family, address) in families {
        text += """
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: echo-\(family.lowercased())
              namespace: lab
              labels:
                kubernetes.io/service-name: echo
            addressType: \(family)
            ports:
            - name: echo
              port: 8080
              protocol: \(transportProtocol)
            endpoints:

            """
        for index in 0..<backends {
            text += "- addresses: [\"\(address(index))\"]\n  conditions: {ready: true}\n"
        }
    }
    return text
}

/// A lab with `backends` reply servers (each answers its own name) and the Service synced into its node.
private func lab(
    backends count: Int, protocol transportProtocol: TransportProtocol = .tcp, ipv6: Bool = false,
    scheduler: String? = nil, affinity: Bool = false
) throws -> (TrafficLab, [ReplyServer]) {
    let lab = try TrafficLab(backends: count)
    var servers: [ReplyServer] = []
    for index in 0..<count {
        for family in ipv6 ? [AddressFamily.ipv4, .ipv6] : [.ipv4] {
            servers.append(
                try ReplyServer(
                    in: lab.backends[index], address: lab.backendAddress(index, family: family), port: 8080,
                    protocol: transportProtocol, reply: "backend-\(index)"))
        }
    }
    let folder = try temporaryFolder("lab")
    try write(
        manifests(
            clusterIPv6: ipv6 ? "fd00:10:96::100" : nil, protocol: transportProtocol.name, backends: count,
            scheduler: scheduler, affinity: affinity), to: folder, as: "echo.yaml")
    let result = try ProxyRun(lab.node)("sync", "-f", folder)
    guard result.status == 0 else { throw CommandFailure(command: "ipvs-proxy sync", result: result) }
    return (lab, servers)
}

private let clusterIP = IPAddress("10.96.100.1")!

@Suite("Real traffic through synced Services", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct TrafficTests {
    @Test func roundRobinAlternatesBetweenBackends() throws {
        let (lab, servers) = try lab(backends: 2)
        let replies = try (0..<6).map { _ in try request(from: lab.client, to: clusterIP, port: 80) }
        #expect(Set(replies) == ["backend-0", "backend-1"])
        // rr takes each backend in turn.
        #expect(zip(replies, replies.dropFirst()).allSatisfy { $0 != $1 }, "\(replies)")
        withExtendedLifetime(servers) {}
    }

    @Test func sourceHashingSticksToOneBackendPerClient() throws {
        let (lab, servers) = try lab(backends: 3, scheduler: "sh")
        let replies = try (0..<6).map { _ in try request(from: lab.client, to: clusterIP, port: 80) }
        #expect(Set(replies).count == 1, "\(replies)")
        #expect(replies.first?.hasPrefix("backend-") == true)
        withExtendedLifetime(servers) {}
    }

    @Test func clientIPAffinitySticksEvenWithRoundRobin() throws {
        let (lab, servers) = try lab(backends: 3, affinity: true)
        let replies = try (0..<6).map { _ in try request(from: lab.client, to: clusterIP, port: 80) }
        #expect(Set(replies).count == 1, "\(replies)")
        #expect(try lab.node.ipvsadmRules().contains("-A -t 10.96.100.1:80 -s rr -p 10800"))
        withExtendedLifetime(servers) {}
    }

    @Test func udpServiceAnswersFromEveryBackend() throws {
        let (lab, servers) = try lab(backends: 2, protocol: .udp)
        // Each request uses a new socket (a new source port), so rr spreads them.
        let replies = try (0..<4).map { _ in try request(from: lab.client, to: clusterIP, port: 80, protocol: .udp) }
        #expect(Set(replies) == ["backend-0", "backend-1"], "\(replies)")
        withExtendedLifetime(servers) {}
    }

    @Test func ipv6ClusterIPCarriesTraffic() throws {
        let (lab, servers) = try lab(backends: 2, ipv6: true)
        let replies = try (0..<4).map { _ in try request(from: lab.client, to: IPAddress("fd00:10:96::100")!, port: 80)
        }
        #expect(Set(replies) == ["backend-0", "backend-1"], "\(replies)")
        withExtendedLifetime(servers) {}
    }
}
