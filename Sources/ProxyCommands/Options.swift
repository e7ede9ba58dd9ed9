import ArgumentParser
import Foundation
import IPVSModel

/// Where ipvs-proxy keeps what it owns, and the dummy link for service addresses.
struct StateOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Where ipvs-proxy records the virtual servers and addresses it owns.", valueName: "folder"))
    var stateDir = "/run/ipvs-proxy"

    @Option(help: ArgumentHelp("The dummy link that holds service addresses.", valueName: "name"))
    var linkName = "kube-ipvs0"
}

/// What translation needs to know about the node.
struct NodeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The IPVS scheduler of every virtual server (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, "
                + "mh, twos). A Service's ipvs-proxy.io/scheduler annotation overrides it.",
            valueName: "name"))
    var scheduler = "rr"

    @Option(
        help: ArgumentHelp(
            "This node's name, matched against endpoints' nodeName for traffic policy Local. Default: the host name.",
            valueName: "name"))
    var nodeName: String?

    @Option(
        help: ArgumentHelp(
            "An address NodePort services listen on (repeatable). Default: every address of the node's interfaces "
                + "except loopback, link-local and the dummy link's.",
            valueName: "address"))
    var nodeIP: [String] = []

    func validate() throws {
        do {
            _ = try Scheduler(validating: scheduler)
        } catch {
            throw ValidationError("--scheduler: \(error)")
        }
        for address in nodeIP where IPAddress(address) == nil {
            throw ValidationError("--node-ip: '\(address)' is not a valid IPv4 or IPv6 address")
        }
    }

    var validatedScheduler: Scheduler { (try? Scheduler(validating: scheduler)) ?? .roundRobin }
    var nodeAddresses: [IPAddress] { nodeIP.compactMap(IPAddress.init) }

    var resolvedNodeName: String {
        if let nodeName { return nodeName }
        return ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
    }
}
