import Foundation
import Testing

@testable import KubernetesModel

/// Decodes `text` with the fast decoder (when it accepts it) and with Foundation's, and returns both.
private func bothWays(_ text: String) -> (
    fast: ManifestSet, full: ManifestSet, fastProblems: [ManifestProblem], fullProblems: [ManifestProblem]
) {
    var fast = ManifestSet()
    var full = ManifestSet()
    var fastProblems: [ManifestProblem] = []
    var fullProblems: [ManifestProblem] = []
    ManifestLoader.decode(text, file: "x.json", into: &fast, problems: &fastProblems, fastPath: true)
    ManifestLoader.decode(text, file: "x.json", into: &full, problems: &fullProblems, fastPath: false)
    return (fast, full, fastProblems, fullProblems)
}

private func expectSame(_ text: String, _ comment: Comment? = nil) {
    let (fast, full, fastProblems, fullProblems) = bothWays(text)
    #expect(fast.services.map(\.object) == full.services.map(\.object), comment)
    #expect(fast.services.map(\.location) == full.services.map(\.location), comment)
    #expect(fast.endpointSlices.map(\.object) == full.endpointSlices.map(\.object), comment)
    #expect(fast.endpoints.map(\.object) == full.endpoints.map(\.object), comment)
    #expect(fast.nodes.map(\.object) == full.nodes.map(\.object), comment)
    #expect(fast.serviceCIDRs.map(\.object) == full.serviceCIDRs.map(\.object), comment)
    #expect(fast.serviceCIDRs.map(\.location) == full.serviceCIDRs.map(\.location), comment)
    #expect(fastProblems == fullProblems, comment)
}

/// A hand-written API response (Tests/Fixtures/hand-written).
private func handWritten(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/hand-written/\(name)").path
}

/// A watch event as Foundation decodes it.
private struct WatchEnvelope: Decodable {
    var type: String
    var object: DecodedDocument?
}

@Suite("The fast JSON decoder agrees with Foundation's", .timeLimit(.minutes(2)))
struct FastJSONTests {
    @Test(arguments: [
        "kubectl-get-all.json", "list-services.json", "list-services-compact.json", "list-endpointslices.json",
        "list-endpoints.json", "list-services-chunked-page1.json", "unauthorized-401.json",
    ])
    func onRecordedResponses(_ name: String) throws {
        let text = try String(contentsOfFile: recorded(name), encoding: .utf8)
        // The fast decoder handles these itself rather than falling back.
        #expect(FastManifestDecoder.decode(text) != nil)
        expectSame(text, "\(name)")
    }

    /// The daemon's API lists go through the same two decoders: the fast one takes every recorded page
    /// itself, and both read the same items, resource version and continue token.
    @Test(arguments: [
        "list-services.json", "list-services-compact.json", "list-endpointslices.json", "list-endpoints.json",
        "list-services-chunked-page1.json", "list-services-chunked-page2.json",
    ])
    func onRecordedListPages(_ name: String) throws {
        let text = try String(contentsOfFile: recorded(name), encoding: .utf8)
        let fast = try #require(FastManifestDecoder.decodeListPage(text))
        let full = try JSONDecoder().decode(DecodedDocument.self, from: Data(text.utf8))
        guard case .list(let items) = full.item else {
            Issue.record("\(name) is not a list")
            return
        }
        #expect(fast.items == items)
        #expect(!fast.items.isEmpty)
        #expect(fast.resourceVersion == "225" || name.hasPrefix("list-services-chunked"))
        #expect(try ListPage.decode(text).items == items)
        if name.hasPrefix("list-services-chunked") {
            #expect(fast.continueToken?.isEmpty == false)
            #expect(fast.items.count == 3)
        } else {
            #expect(fast.continueToken == nil)
        }
    }

    /// The daemon's watch events go through the same two decoders: the fast one takes every recorded event that
    /// carries an object and reads the same object as Foundation's; bookmarks and errors it leaves to Foundation.
    @Test(arguments: [
        "watch-services.jsonl", "watch-services-from-rv1.jsonl", "watch-endpointslices.jsonl",
        "hand-written/watch-nodes.jsonl",
    ])
    func onRecordedWatchEvents(_ name: String) throws {
        let path = name.hasPrefix("hand-written/") ? handWritten(String(name.dropFirst(13))) : recorded(name)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        var read = 0
        for line in lines {
            let full = try JSONDecoder().decode(WatchEnvelope.self, from: Data(line.utf8))
            let fast = WatchEventLine.decodeFast(ArraySlice(line.utf8))
            guard let type = WatchEventLine.EventType(rawValue: full.type) else {
                #expect(fast == nil, "\(full.type) in \(name)")
                continue
            }
            #expect(fast?.type == type)
            #expect(fast?.item == full.object?.item, "\(name): \(line.prefix(80))")
            read += 1
        }
        #expect(read > 0)
    }

    @Test(arguments: [
        #"{"object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"a"}},"type":"ADDED"}"#,
        #"{"type":"ADDED","type":"DELETED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"a"}}}"#,
        #"{"type":"ADDED","object":{"kind":"Service","apiVersion":"v2","metadata":{"name":"a"}}}"#,
        #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","code":410}}"#,
        #"{"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"a"}}} x"#,
    ])
    func watchEventsFallBack(_ line: String) {
        #expect(WatchEventLine.decodeFast(ArraySlice(line.utf8)) == nil)
    }

    /// Fuzzing finding 8: a byte that is not UTF-8 inside a string the fast scanner skips (an annotation, a uid).
    /// JSONDecoder refuses the object; the fast scanner would have read it, so it leaves such a line to
    /// JSONDecoder.
    @Test func aWatchLineThatIsNotUTF8GoesToJSONDecoder() {
        let valid = Array(
            #"{"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"a","uid":"u"}}}"#.utf8)
        #expect(WatchEventLine.decodeFast(ArraySlice(valid)) != nil)
        var invalid = valid
        invalid[invalid.lastIndex(of: UInt8(ascii: "u"))!] = 0xFF
        #expect(WatchEventLine.decodeFast(ArraySlice(invalid)) == nil)
    }

    /// The Node list the daemon reads (hand-written in the API server's shape), both ways alike, with the zone,
    /// pod CIDRs and addresses the proxy uses.
    @Test func onANodeList() throws {
        let text = try String(contentsOfFile: handWritten("list-nodes.json"), encoding: .utf8)
        let page = try #require(FastManifestDecoder.decodeListPage(text))
        guard case .node(let node) = try #require(page.items.first) else {
            Issue.record("not a Node: \(page.items)")
            return
        }
        #expect(node.zone == "zone-a")
        #expect(node.spec?.podCIDRs == ["10.244.1.0/24", "fd00:244:1::/64"])
        #expect(node.status?.addresses?.first == NodeAddress(type: "InternalIP", address: "192.168.60.10"))
        expectSame(text)
    }

    /// The ServiceCIDR list (hand-written in the API server's shape): the fast decoder reads it itself, as a page
    /// and as a manifest, both ways alike.
    @Test func onAServiceCIDRList() throws {
        let text = try String(contentsOfFile: handWritten("list-servicecidrs.json"), encoding: .utf8)
        let page = try #require(FastManifestDecoder.decodeListPage(text))
        let full = try JSONDecoder().decode(DecodedDocument.self, from: Data(text.utf8))
        #expect(.list(page.items) == full.item)
        guard case .serviceCIDR(let first) = try #require(page.items.first) else {
            Issue.record("not a ServiceCIDR: \(page.items)")
            return
        }
        #expect(first.spec?.cidrs == ["10.96.0.0/12", "fd00:10:96::/108"])
        #expect(first.isReady)
        #expect(FastManifestDecoder.decode(text) != nil)
        expectSame(text)
    }

    /// A page the fast decoder cannot vouch for is read by `JSONDecoder`, with the same result.
    @Test(arguments: [
        #"{"items":[{"metadata":{"name":"a","namespace":"x"},"spec":{"clusterIP":"10.0.0.1"}}],"kind":"ServiceList","metadata":{"resourceVersion":"7","continue":"abc"}}"#,
        #"{"kind":"ServiceList","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"a"},"spec":{"ports":[{"port":"80"}]}}]}"#,
    ])
    func listPagesFallBack(_ text: String) throws {
        #expect(FastManifestDecoder.decodeListPage(text) == nil)
        let page = try ListPage.decode(text)
        #expect(page.resourceVersion == "7")
        #expect(page.items.count == 1)
    }

    @Test func onTheExample() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/nodeport.json").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(FastManifestDecoder.decode(text) != nil)
        expectSame(text)
    }

    @Test(arguments: [
        #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"a\"b\\c\u00e9\ud83d\ude00","labels":{"x":"y"}},"spec":{"ports":[{"port":80,"targetPort":"http"}]}}"#,
        #"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a"},"spec":{"clusterIP":"10.0.0.1","ports":[{"port":1,"nodePort":null}]}}]}"#,
        #"{"apiVersion":"v1","items":[{"kind":"Service","metadata":{"name":"a"}},{"kind":"Deployment","spec":{"replicas":2,"ports":"x"}}],"kind":"List"}"#,
        #"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"s"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":null,"serving":true}}],"ports":[{"port":null}]}"#,
        #"{"kind":"Endpoints","metadata":{"name":"e"},"subsets":[{"addresses":[{"ip":"1.2.3.4"}],"notReadyAddresses":null,"ports":[{"port":5}]}]}"#,
        #"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"s"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"hints":{"forZones":[{"name":"a"}],"forNodes":null}}]}"#,
        #"{"kind":"Node","apiVersion":"v1","metadata":{"name":"n","deletionTimestamp":"2026-11-25T16:00:00Z"},"spec":{"taints":[{"key":"k","effect":"NoSchedule","timeAdded":null}]},"status":{"addresses":null}}"#,
        #"{"kind":"Service","metadata":{"name":"lb"},"spec":{"type":"LoadBalancer","healthCheckNodePort":32000}}"#,
        #"{"kind":"ServiceCIDR","apiVersion":"networking.k8s.io/v1","metadata":{"name":"c","deletionTimestamp":"2026-11-25T16:00:00Z"},"spec":{"cidrs":["10.96.0.0/12"],"other":1},"status":{"conditions":[{"type":"Ready","status":"False","reason":null,"observedGeneration":2}]}}"#,
        #"{"kind":"ServiceCIDR","metadata":{"name":"c"},"spec":{"cidrs":null},"status":{"conditions":null}}"#,
        #"{"kind":"ServiceCIDR","metadata":{"name":"c"},"spec":null,"status":null}"#,
        #"{"apiVersion":"v1","kind":"List","items":[{"kind":"ServiceCIDR","metadata":{"name":"c"},"spec":{"cidrs":["10.96.0.0/33"]}},{"kind":"Service","metadata":{"name":"a"}}]}"#,
        // Keys of ignored values are not read, so neither escapes nor repeats in them matter (managedFields
        // has keys like "k:{\"port\":80}").
        #"{"kind":"Service","metadata":{"name":"a","managedFields":[{"f:x":{"k:{\"p\":1}":{},"f:x":1}}]}}"#,
    ])
    func onHandWrittenObjects(_ text: String) {
        #expect(FastManifestDecoder.decode(text) != nil, "\(text)")
        expectSame(text, "\(text)")
    }

    /// Whatever it cannot vouch for goes to the full decoder, so problems are worded the same.
    @Test(arguments: [
        #"{"kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"port":"80"}]}}"#,
        #"{"kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"port":8e1}]}}"#,
        #"{"kind":"Service","apiVersion":"v2","metadata":{"name":"a"}}"#,
        #"{"kind":"EndpointSlice","metadata":{"name":"s"}}"#,
        #"{"apiVersion":"v1","metadata":{"name":"s"}}"#,
        #"{"items":[{"metadata":{"name":"a"}}],"kind":"ServiceList"}"#,
        #"[1,2]"#,
        #"{"kind":"Service","metadata":{"name":"a"}} trailing"#,
        #"{"kind":"Service","metadata":{"name":"a","labels":{"x":1}}}"#,
        // A Node's or a ServiceCIDR's spec or status read before its kind was known was read as a Service's.
        #"{"spec":{"podCIDR":"10.0.0.0/24"},"kind":"Node","metadata":{"name":"n"}}"#,
        #"{"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}]},"kind":"Node","metadata":{"name":"n"}}"#,
        #"{"spec":{"cidrs":["10.96.0.0/12"]},"kind":"ServiceCIDR","metadata":{"name":"c"}}"#,
        #"{"status":{"conditions":[]},"kind":"ServiceCIDR","metadata":{"name":"c"}}"#,
        // A ServiceCIDR the full decoder refuses.
        #"{"kind":"ServiceCIDR","apiVersion":"networking.k8s.io/v1beta1","metadata":{"name":"c"}}"#,
        #"{"kind":"ServiceCIDR","metadata":{"name":"c"},"status":{"conditions":[{"type":"Ready"}]}}"#,
        #"{"kind":"ServiceCIDR","metadata":{"name":"c"},"status":{"conditions":[{"type":"Ready","status":true}]}}"#,
        #"{"kind":"ServiceCIDR","metadata":{"name":"c"},"spec":{"cidrs":"10.96.0.0/12"}}"#,
        // Found by fuzzing (Tests/Fuzz/Crashes/manifest): decoders disagreed on these.
        #"{"kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"port":080}]}}"#,
        #"{"kind":"Service","metadata":{"name":"a","name":"b"}}"#,
        #"{"kin\u0064":"Endpoints","kind":"Service","metadata":{"name":"a"}}"#,
        #"{"kind":"Service","metadata":{"nam\u0065":"a","name":"b"}}"#,
        #"{"kind":"Service","metadata":{"name":"a","labels":{"app\u002fx":"y"}}}"#,
        #"{"kind":"Service","metadata":{"name":"a","labels":{"é":"y"}}}"#,
        #"{"kind":"Service","metadata":{"name":"a"},"extra":"\x"}"#,
        #"{"kind":"Service","metadata":{"name":"a"},"extra":--1}"#,
        #"{"kind":"Service","metadata":{"name":"a"},"extra":1.}"#,
    ])
    func fallsBackOnAnythingElse(_ text: String) {
        #expect(FastManifestDecoder.decode(text) == nil, "\(text)")
        expectSame(text, "\(text)")
    }
}

@Suite("Many keys", .timeLimit(.minutes(2)))
struct ManyKeysTests {
    private func service(labels: [String]) -> String {
        #"{"kind":"Service","metadata":{"name":"a","labels":{"#
            + labels.map { #""\#($0)":"v""# }.joined(separator: ",") + "}}}"
    }

    /// Found by fuzzing: the duplicate check once compared each key with every earlier one. Large objects
    /// are checked through a set (`scripts/fuzz` replays the 8,280-key reproducer under a 10 s timeout).
    @Test func aLargeLabelMapIsReadByTheFastPath() {
        let text = service(labels: (0..<20_000).map { "key-\($0)" })
        #expect(FastManifestDecoder.decode(text) != nil)
        expectSame(text)
        #expect(bothWays(text).fast.services.first?.object.metadata.labels?.count == 20_000)
    }

    @Test(arguments: [3, 15, 16, 17, 5_000])
    func aRepeatedKeyAnywhereInALargeObjectGoesToTheFullDecoder(_ repeatedAt: Int) {
        var labels = (0..<5_001).map { "key-\($0)" }
        labels.insert("key-0", at: repeatedAt + 1)
        let text = service(labels: labels)
        #expect(FastManifestDecoder.decode(text) == nil)
        expectSame(text)
    }
}

@Suite("Deep nesting", .timeLimit(.minutes(2)))
struct DeepNestingTests {
    /// Found by fuzzing: deep nesting in an ignored field overflowed the stack of the fast decoder.
    @Test func deeplyNestedIgnoredFieldsAreRefusedNotCrashedOn() {
        let deep =
            #"{"kind":"Service","metadata":{"name":"a"},"extra":"# + String(repeating: "[", count: 100_000)
            + String(repeating: "]", count: 100_000) + "}"
        #expect(FastManifestDecoder.decode(deep) == nil)
        var set = ManifestSet()
        var problems: [ManifestProblem] = []
        ManifestLoader.decode(deep, file: "deep.json", into: &set, problems: &problems)
        #expect(problems.first?.description.hasPrefix("deep.json: invalid JSON") == true)
    }

    /// Found by fuzzing: Lists nested in Lists recursed without bound.
    @Test func listsNestedTooDeepAreAProblemForBothDecoders() {
        var text = #"{"kind":"Service","metadata":{"name":"a"}}"#
        for _ in 0..<300 { text = #"{"kind":"List","items":["# + text + "]}" }
        #expect(FastManifestDecoder.decode(text) == nil)
        expectSame(text)
        var set = ManifestSet()
        var problems: [ManifestProblem] = []
        ManifestLoader.decode(text, file: "lists.json", into: &set, problems: &problems)
        #expect(problems.count == 1)
        #expect(set.services.isEmpty)

        var shallow = #"{"kind":"Service","metadata":{"name":"a"}}"#
        for _ in 0..<3 { shallow = #"{"kind":"List","items":["# + shallow + "]}" }
        #expect(FastManifestDecoder.decode(shallow) != nil)
        expectSame(shallow)
    }
}
