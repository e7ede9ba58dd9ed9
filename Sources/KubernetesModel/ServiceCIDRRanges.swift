import InternetAddress

/// A ServiceCIDR's `spec.cidrs`, parsed and checked as the API server checks them (Kubernetes'
/// `ValidateServiceCIDR`): one network, or one of each family, each written in canonical form.
public struct ServiceCIDRRanges: Sendable, Hashable {
    /// The networks, in the order of `spec.cidrs`.
    public let networks: [IPNetwork]

    /// What is wrong with a `spec.cidrs`: every problem, each with the index of its entry (`nil` for the list as a
    /// whole), so that a caller can name the field.
    public struct Invalid: Error, Sendable, Hashable, CustomStringConvertible {
        public struct Problem: Sendable, Hashable {
            /// The entry's position in `spec.cidrs`, or `nil` when the list is wrong as a whole.
            public var index: Int?
            public var message: String
        }

        public var problems: [Problem]

        /// `spec.cidrs[1]: 'fd00::1/108' has bits set ...`, one problem a line.
        public var description: String {
            problems.map { "spec.cidrs\($0.index.map { "[\($0)]" } ?? ""): \($0.message)" }
                .joined(separator: "\n")
        }
    }

    /// Checks `cidrs`.
    /// - Throws: ``Invalid`` with every problem: an empty list, more than two entries, an entry that is not a network
    ///   in canonical form, two of one family.
    public init(_ cidrs: [String]) throws(Invalid) {
        guard !cidrs.isEmpty else {
            throw Invalid(problems: [.init(index: nil, message: "must hold at least one CIDR (10.96.0.0/12)")])
        }
        guard cidrs.count <= 2 else {
            throw Invalid(problems: [
                .init(index: nil, message: "holds \(cidrs.count) CIDRs; at most 2, one IPv4 and one IPv6")
            ])
        }
        var networks: [IPNetwork] = []
        var problems: [Invalid.Problem] = []
        for (index, text) in cidrs.enumerated() {
            do {
                networks.append(try IPNetwork(canonical: text))
            } catch {
                problems.append(.init(index: index, message: "'\(text)' \(error)"))
            }
        }
        // The API server checks the families first and stops there; each entry's own problem says more, so it comes
        // first here, and families are compared only between networks that parsed.
        if problems.isEmpty, networks.count == 2, networks[0].family == networks[1].family {
            problems.append(
                .init(
                    index: nil,
                    message: "holds two \(networks[0].family) CIDRs; at most one of each family "
                        + "(10.96.0.0/12 and fd00:10:96::/108)"))
        }
        guard problems.isEmpty else { throw Invalid(problems: problems) }
        self.networks = networks
    }

    /// The network of `family`, if the ServiceCIDR has one.
    public func network(_ family: AddressFamily) -> IPNetwork? {
        networks.first { $0.family == family }
    }
}
