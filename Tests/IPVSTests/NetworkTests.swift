import Testing

@testable import InternetAddress

@Suite("IP networks in canonical form", .timeLimit(.minutes(2)))
struct CanonicalNetworkTests {
    @Test(arguments: [
        "10.96.0.0/12", "0.0.0.0/0", "192.0.2.7/32", "fd00:10:96::/108", "::/0", "2001:db8::/64", "::1/128",
        "fd00:0:1::/48", "2001:db8:0:1::/64", "1:0:0:1::/64", "fe80::/10",
    ])
    func acceptsWhatGoWrites(_ text: String) throws {
        let network = try IPNetwork(canonical: text)
        #expect(network.canonicalDescription == text)
        #expect(IPNetwork(text) == network)
    }

    @Test(arguments: [
        "10.96.0.0", "10.96.0.0/33", "fd00::/129", "10.96.0.0/", "/12", "10.96.0.0/-1", "10.96.0.0/+12",
        "010.96.0.0/12", " 10.96.0.0/12", "10.96.0.0/12 ", "fe80::%eth0/64", "", "10.96.0.0/1_2",
    ])
    func refusesWhatIsNotACIDR(_ text: String) {
        #expect(throws: IPNetwork.CanonicalFormProblem.notCIDR) { try IPNetwork(canonical: text) }
    }

    @Test func refusesHostBitsNamingTheNetwork() throws {
        #expect(throws: IPNetwork.CanonicalFormProblem.hostBitsSet(IPNetwork("10.96.0.0/12")!)) {
            try IPNetwork(canonical: "10.96.0.1/12")
        }
        #expect(throws: IPNetwork.CanonicalFormProblem.hostBitsSet(IPNetwork("fd00::/64")!)) {
            try IPNetwork(canonical: "FD00::1/64")
        }
    }

    @Test(arguments: [
        ("FD00::/108", "fd00::/108"), ("fd00:0::/108", "fd00::/108"), ("10.96.0.0/012", "10.96.0.0/12"),
        ("0:0:0:0:0:0:0:0/0", "::/0"),
        // The longest run of zero groups is the one shortened; of equal runs, the first; a single zero group never.
        ("2001:db8::1:0:0:0/80", "2001:db8:0:0:1::/80"), ("2001:db8:0:0:1:0:0:1/128", "2001:db8::1:0:0:1/128"),
        ("2001:db8::1:1:1:1:1/128", "2001:db8:0:1:1:1:1:1/128"),
    ])
    func refusesOtherSpellingsNamingTheCanonicalOne(_ text: String, _ canonical: String) throws {
        #expect(throws: IPNetwork.CanonicalFormProblem.notCanonical(IPNetwork(canonical)!)) {
            try IPNetwork(canonical: text)
        }
        #expect(try IPNetwork(canonical: canonical).canonicalDescription == canonical)
    }

    @Test func refusesIPv4MappedIPv6() {
        #expect(throws: IPNetwork.CanonicalFormProblem.ipv4MappedIPv6) {
            try IPNetwork(canonical: "::ffff:10.96.0.0/108")
        }
    }

    /// `inet_ntop` writes an IPv4-compatible address with a dotted tail; Go, and so Kubernetes, in hex.
    @Test func writesIPv4CompatibleAddressesInHexAsGoDoes() throws {
        #expect(IPNetwork("::a00:0/104")?.description == "::10.0.0.0/104")
        #expect(try IPNetwork(canonical: "::a00:0/104").canonicalDescription == "::a00:0/104")
    }
}
