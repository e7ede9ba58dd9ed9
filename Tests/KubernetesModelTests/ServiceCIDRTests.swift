import Foundation
import InternetAddress
import TestSupport
import Testing

@testable import KubernetesModel

/// A ServiceCIDR as YAML, with `cidrs` as written (a flow list, or anything else to break it).
private func serviceCIDR(_ cidrs: String, name: String = "extra", apiVersion: String = "networking.k8s.io/v1")
    -> String
{
    "apiVersion: \(apiVersion)\nkind: ServiceCIDR\nmetadata: {name: \(name)}\nspec:\n  cidrs: \(cidrs)\n"
}

/// Writes `content` to a fresh file and loads it.
private func load(_ content: String, named name: String = "input.yaml") throws(ManifestErrors) -> ManifestSet {
    let folder = try! makeTemporaryFolder("manifests")
    defer { removeTemporaryFolder(folder) }
    let file = (folder as NSString).appendingPathComponent(name)
    try! Data(content.utf8).write(to: URL(fileURLWithPath: file))
    return try ManifestLoader.load(paths: [file])
}

/// A hand-written API response (Tests/Fixtures/hand-written).
private func handWritten(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/hand-written/\(name)").path
}

private let refusals: [BadInput] = [
    BadInput(
        name: "no CIDR", content: serviceCIDR("[]"),
        expected: "document 1 (ServiceCIDR extra): spec.cidrs: must hold at least one CIDR"),
    BadInput(
        name: "no spec", content: "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: extra}\n",
        expected: "(ServiceCIDR extra): spec.cidrs: must hold at least one CIDR"),
    BadInput(
        name: "three CIDRs", content: serviceCIDR("[10.96.0.0/12, \"fd00::/108\", 10.112.0.0/16]"),
        expected: "(ServiceCIDR extra): spec.cidrs: holds 3 CIDRs; at most 2, one IPv4 and one IPv6"),
    BadInput(
        name: "two IPv4 CIDRs", content: serviceCIDR("[10.96.0.0/12, 10.112.0.0/16]"),
        expected: "(ServiceCIDR extra): spec.cidrs: holds two IPv4 CIDRs; at most one of each family"),
    BadInput(
        name: "two IPv6 CIDRs", content: serviceCIDR("[\"fd00:1::/108\", \"fd00:2::/108\"]"),
        expected: "spec.cidrs: holds two IPv6 CIDRs; at most one of each family"),
    BadInput(
        name: "a prefix length too long", content: serviceCIDR("[\"fd00::/108\", 10.96.0.0/33]"),
        expected: "(ServiceCIDR extra): spec.cidrs[1]: '10.96.0.0/33' is not a network in CIDR notation"),
    BadInput(
        name: "an address without a length", content: serviceCIDR("[10.96.0.0]"),
        expected: "spec.cidrs[0]: '10.96.0.0' is not a network in CIDR notation"),
    BadInput(
        name: "host bits set", content: serviceCIDR("[10.96.0.1/12]"),
        expected: "spec.cidrs[0]: '10.96.0.1/12' has bits set beyond the prefix length (the network is 10.96.0.0/12)"),
    BadInput(
        name: "IPv6 not in canonical form", content: serviceCIDR("[10.96.0.0/12, \"FD00:0:0::/108\"]"),
        expected: "spec.cidrs[1]: 'FD00:0:0::/108' is not in canonical form (fd00::/108)"),
    BadInput(
        name: "a leading zero in the length", content: serviceCIDR("[10.96.0.0/012]"),
        expected: "spec.cidrs[0]: '10.96.0.0/012' is not in canonical form (10.96.0.0/12)"),
    BadInput(
        name: "IPv4-mapped IPv6", content: serviceCIDR("[\"::ffff:10.96.0.0/108\"]"),
        expected: "spec.cidrs[0]: '::ffff:10.96.0.0/108' is an IPv4-mapped IPv6 address"),
    BadInput(
        name: "cidrs is not a list", content: serviceCIDR("10.96.0.0/12"),
        expected: "(ServiceCIDR extra): spec.cidrs: expected a list"),
    BadInput(
        name: "no name",
        content: "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nspec: {cidrs: [10.96.0.0/12]}\n",
        expected: "(ServiceCIDR): metadata.name: missing: every object needs a name"),
    BadInput(
        name: "another API version", content: serviceCIDR("[10.96.0.0/12]", apiVersion: "networking.k8s.io/v1beta1"),
        expected: "apiVersion: unsupported apiVersion 'networking.k8s.io/v1beta1' for ServiceCIDR; expected "
            + "networking.k8s.io/v1"),
    BadInput(
        name: "a condition without a status",
        content: serviceCIDR("[10.96.0.0/12]") + "status:\n  conditions: [{type: Ready}]\n",
        expected: "(ServiceCIDR extra): status.conditions[0].status: missing: this field is required"),
    BadInput(
        name: "a ServiceCIDR twice",
        content: serviceCIDR("[10.96.0.0/12]") + "---\n" + serviceCIDR("[10.112.0.0/16]"),
        expected: "document 2 (ServiceCIDR extra): defined twice; also at"),
    BadInput(
        name: "a bad range in a JSON List",
        content: #"""
            {"apiVersion":"v1","kind":"List","items":[{"apiVersion":"networking.k8s.io/v1","kind":"ServiceCIDR",
            "metadata":{"name":"extra"},"spec":{"cidrs":["10.96.0.0/12","10.96.0.0/33"]}}]}
            """#, file: "input.json",
        expected: "document 1, item 1 (ServiceCIDR extra): spec.cidrs[1]: '10.96.0.0/33' is not a network in CIDR"),
]

@Suite("ServiceCIDRs: the cluster's service ranges", .timeLimit(.minutes(2)))
struct ServiceCIDRTests {
    @Test(arguments: refusals)
    func isRefused(_ input: BadInput) throws {
        let errors = try #require(throws: ManifestErrors.self) { try load(input.content, named: input.file) }
        #expect(errors.problems.count == 1, "\(errors)")
        #expect(errors.description.contains(input.expected), "\(errors)")
        #expect(errors.description.contains(input.file), "names the file: \(errors)")
    }

    @Test func everyBadEntryIsReported() throws {
        let errors = try #require(throws: ManifestErrors.self) {
            try load(serviceCIDR("[10.96.0.1/12, \"fd00::/129\"]"))
        }
        #expect(errors.problems.map(\.field) == ["spec.cidrs[0]", "spec.cidrs[1]"])
    }

    @Test(arguments: [
        ["10.96.0.0/12"], ["fd00:10:96::/108"], ["10.96.0.0/12", "fd00:10:96::/108"],
        ["fd00:10:96::/108", "10.96.0.0/12"],
    ])
    func rangesAreOneNetworkOrOneOfEachFamily(_ cidrs: [String]) throws {
        let ranges = try ServiceCIDRRanges(cidrs)
        #expect(ranges.networks.map(\.description) == cidrs)
        #expect(ranges.network(.ipv4)?.description == cidrs.first { !$0.contains(":") })
        #expect(ranges.network(.ipv6)?.description == cidrs.first { $0.contains(":") })
    }

    @Test func theInvalidRangesSayWhichEntry() throws {
        let error = try #require(throws: ServiceCIDRRanges.Invalid.self) {
            try ServiceCIDRRanges(["10.96.0.0/12", "10.96.0.0/33"])
        }
        #expect(error.problems == [.init(index: 1, message: "'10.96.0.0/33' is not a network in CIDR notation")])
        #expect(error.description == "spec.cidrs[1]: '10.96.0.0/33' is not a network in CIDR notation")
    }

    /// The list the API server answers (`GET /apis/networking.k8s.io/v1/servicecidrs`, hand-written): the default
    /// `kubernetes` ServiceCIDR, ready, and one being deleted that still holds addresses.
    @Test func theAPIListDecodes() throws {
        let text = try String(contentsOfFile: handWritten("list-servicecidrs.json"), encoding: .utf8)
        let page = try ListPage.decode(text)
        #expect(page.isList(of: "ServiceCIDR"))
        #expect(page.resourceVersion == "412")
        let objects = page.items.compactMap { item -> ServiceCIDR? in
            if case .serviceCIDR(let object) = item { object } else { nil }
        }
        #expect(objects.count == 2)
        let kubernetes = try #require(objects.first)
        #expect(kubernetes.metadata.name == "kubernetes")
        #expect(kubernetes.isReady && !kubernetes.isBeingDeleted)
        let ranges = try kubernetes.ranges()
        #expect(ranges.network(.ipv4) == IPNetwork("10.96.0.0/12"))
        #expect(ranges.network(.ipv6) == IPNetwork("fd00:10:96::/108"))
        #expect(
            kubernetes.status?.conditions == [
                Condition(
                    type: "Ready", status: "True", reason: "", message: "Kubernetes default Service CIDR is ready",
                    lastTransitionTime: "2026-11-25T13:49:42Z")
            ])

        let extra = try #require(objects.last)
        #expect(extra.isBeingDeleted && !extra.isReady)
        #expect(extra.status?.conditions?.first?.reason == ServiceCIDR.terminatingReason)
        #expect(try extra.ranges().networks == [IPNetwork("10.112.0.0/24")])
    }

    /// The same file read as a manifest: a typed list, its items without a kind of their own.
    @Test func theAPIListLoadsAsAManifest() throws {
        let set = try ManifestLoader.load(paths: [handWritten("list-servicecidrs.json")])
        #expect(set.serviceCIDRs.map(\.object.metadata.name) == ["kubernetes", "extra"])
        #expect(set.serviceCIDRs.first?.location.description.hasSuffix("item 1 (ServiceCIDR kubernetes)") == true)
        #expect(set.isEmpty, "a ServiceCIDR alone is nothing to proxy")
    }

    /// kubectl's `List`, in YAML, with a Service beside the ServiceCIDR.
    @Test func aYAMLListHoldsServiceCIDRsBesideServices() throws {
        let content = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: networking.k8s.io/v1
              kind: ServiceCIDR
              metadata: {name: kubernetes}
              spec:
                cidrs: [10.96.0.0/12, "fd00:10:96::/108"]
              status:
                conditions:
                - {type: Ready, status: "True", lastTransitionTime: "2026-11-25T13:49:42Z", reason: "", message: ok}
            - apiVersion: v1
              kind: Service
              metadata: {name: web, namespace: shop}
              spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
            """
        let set = try load(content)
        #expect(set.services.count == 1)
        let located = try #require(set.serviceCIDRs.first)
        #expect(located.location.description.hasSuffix("document 1, item 1 (ServiceCIDR kubernetes)"))
        #expect(located.object.isReady)
        #expect(try located.object.ranges().networks.count == 2)
    }
}
