import Foundation
import IPVSModel
import Testing

/// A Service over the lab's backends, with each endpoint's conditions spelled out.
private func echoService(_ endpoints: [(index: Int, ready: Bool, terminating: Bool)], affinity: Bool = false) -> String
{
    var text = """
        apiVersion: v1
        kind: Service
        metadata: {name: echo, namespace: lab}
        spec:
          clusterIP: 10.96.70.1
          sessionAffinity: \(affinity ? "ClientIP" : "None")
          ports: [{name: echo, port: 80, protocol: TCP, targetPort: 8080}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: echo-1
          namespace: lab
          labels: {kubernetes.io/service-name: echo}
        addressType: IPv4
        ports: [{name: echo, port: 8080, protocol: TCP}]
        endpoints:

        """
    for endpoint in endpoints {
        text +=
            "- {addresses: [\"10.200.\(endpoint.index).2\"], conditions: {ready: \(endpoint.ready), serving: \(endpoint.ready || endpoint.terminating), terminating: \(endpoint.terminating)}}\n"
    }
    return text
}

private let clusterIP = IPAddress("10.96.70.1")!
private let echo = VirtualServerKey.address(.tcp, clusterIP, port: 80)

@Suite("Traffic under change", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct RollingUpdateTests {
    /// Backends 0 and 1 are replaced by 2 and 3, one at a time (new one ready, old one terminating, then
    /// gone), while a client keeps making requests: none fails, and every old backend is deleted.
    @Test func aRollingUpdateLosesNoRequest() throws {
        let lab = try TrafficLab(backends: 4)
        let servers = try (0..<4).map {
            try ReplyServer(in: lab.backends[$0], address: lab.backendAddress($0), port: 8080, reply: "backend-\($0)")
        }
        let folder = try temporaryFolder("rolling")
        let file = "echo.yaml"
        try write(echoService([(0, true, false), (1, true, false)]), to: folder, as: file)
        let daemon = try Daemon(namespace: lab.node, manifests: folder, arguments: ["--drain-check-period", "200ms"])
        defer { daemon.stop() }
        let ipvs = try lab.node.ipvs()
        #expect(
            try eventually(timeoutSeconds: 20) { try ipvs.realServers(of: echo).count == 2 ? true : nil } == true,
            "\(daemon.output)")

        // The client: a bounded number of requests, paced to span the whole update. It ends each connection
        // with a reset: a normally closed one lingers in the kernel's IPVS table in TIME_WAIT for 2 minutes,
        // counted as inactive, which would hold its drained backend that long (as it does kube-proxy's).
        let results = LockedBox<[String]>([])
        let client = Thread {
            for _ in 0..<200 {
                let reply =
                    (try? lab.client.perform { () -> String in
                        let connection = try openConnection(to: clusterIP, port: 80)
                        let reply = readAll(connection)
                        var linger = linger(l_onoff: 1, l_linger: 0)
                        setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
                        close(connection)
                        return reply
                    }) ?? "FAILED"
                results.value.append(reply.isEmpty ? "FAILED" : reply)
                Thread.sleep(forTimeInterval: 0.03)
            }
        }
        client.start()
        let steps: [[(index: Int, ready: Bool, terminating: Bool)]] = [
            [(0, true, false), (1, true, false), (2, true, false)],  // backend-2 ready
            [(0, false, true), (1, true, false), (2, true, false)],  // backend-0 terminating
            [(1, true, false), (2, true, false)],  // backend-0 gone
            [(1, true, false), (2, true, false), (3, true, false)],  // backend-3 ready
            [(1, false, true), (2, true, false), (3, true, false)],  // backend-1 terminating
            [(2, true, false), (3, true, false)],  // backend-1 gone
        ]
        for step in steps {
            Thread.sleep(forTimeInterval: 0.8)
            try write(echoService(step), to: folder, as: file)
        }
        #expect(eventually(timeoutSeconds: 120) { results.value.count >= 200 ? true : nil } == true)
        let replies = results.value
        #expect(
            !replies.contains("FAILED"),
            "\(replies.filter { $0 == "FAILED" }.count) of \(replies.count) requests failed")
        // The update happened while the client ran: it met old and new backends.
        #expect(Set(replies) == ["backend-0", "backend-1", "backend-2", "backend-3"], "\(Set(replies))")
        #expect(replies.suffix(20).allSatisfy { $0 == "backend-2" || $0 == "backend-3" }, "\(replies.suffix(20))")
        // The old backends were deleted once their connections were gone.
        let deleted = try eventually(timeoutSeconds: 30) { () -> Bool? in
            let reals = try ipvs.realServers(of: echo).map(\.server.address.description).sorted()
            return reals == ["10.200.2.2", "10.200.3.2"] ? true : nil
        }
        let remaining = try ipvs.realServers(of: echo)
        #expect(deleted == true, "\(remaining)")
        withExtendedLifetime(servers) {}
    }

    /// With ClientIP affinity, a client stays on its backend while the other backends come and go.
    @Test func sessionAffinitySurvivesChurnOfOtherBackends() throws {
        let lab = try TrafficLab(backends: 4)
        let servers = try (0..<4).map {
            try ReplyServer(in: lab.backends[$0], address: lab.backendAddress($0), port: 8080, reply: "backend-\($0)")
        }
        let folder = try temporaryFolder("affinity")
        try write(
            echoService([(0, true, false), (1, true, false), (2, true, false)], affinity: true), to: folder,
            as: "echo.yaml")
        let daemon = try Daemon(namespace: lab.node, manifests: folder)
        defer { daemon.stop() }
        let ipvs = try lab.node.ipvs()
        #expect(
            try eventually(timeoutSeconds: 20) { try ipvs.realServers(of: echo).count == 3 ? true : nil } == true,
            "\(daemon.output)")
        let first = try request(from: lab.client, to: clusterIP, port: 80)
        let mine = try #require(Int(first.dropFirst("backend-".count)))
        let others = [0, 1, 2, 3].filter { $0 != mine }
        let churn: [[Int]] = [[mine, others[0]], [mine, others[0], others[1], others[2]], [mine, others[2]], [mine]]
        for members in churn {
            try write(echoService(members.map { ($0, true, false) }, affinity: true), to: folder, as: "echo.yaml")
            _ = try eventually(timeoutSeconds: 10) {
                try ipvs.realServers(of: echo).filter { $0.server.weight > 0 }.count == members.count ? true : nil
            }
            for _ in 0..<3 {
                #expect(try request(from: lab.client, to: clusterIP, port: 80) == first)
            }
        }
        withExtendedLifetime(servers) {}
    }
}
