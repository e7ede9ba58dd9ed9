import Foundation

/// The process's limit on open descriptors (`RLIMIT_NOFILE`).
///
/// The soft limit is often 1024 (systemd's default, and what a shell passes on), far below the hard limit that
/// the same systemd or container runtime allows (524288, 1048576). Go raises the soft limit to the hard one when
/// a program starts (since Go 1.19), so kube-proxy runs with the hard limit; the daemon does the same, so that
/// the limit is what an operator set rather than a default nobody chose.
package struct DescriptorLimit: Equatable, Sendable, CustomStringConvertible {
    /// What `open`, `socket` and `accept` are refused past (`EMFILE`).
    package var soft: UInt64
    /// How far the process may raise `soft` without privileges.
    package var hard: UInt64

    package init(soft: UInt64, hard: UInt64) {
        self.soft = soft
        self.hard = hard
    }

    /// `RLIM_INFINITY` (all bits set), which Swift imports as an overflowing literal.
    package static let unlimited = UInt64.max

    package var description: String { "soft \(Self.text(soft)), hard \(Self.text(hard))" }

    private static func text(_ value: UInt64) -> String {
        value == Self.unlimited ? "unlimited" : "\(value)"
    }

    /// The process's limit now.
    package static func current() throws(DescriptorLimitError) -> DescriptorLimit {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { throw DescriptorLimitError(operation: "read", code: errno) }
        return DescriptorLimit(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// Sets the process's limit.
    package static func set(_ limit: DescriptorLimit) throws(DescriptorLimitError) {
        var value = rlimit(rlim_cur: rlim_t(limit.soft), rlim_max: rlim_t(limit.hard))
        guard setrlimit(resource, &value) == 0 else {
            throw DescriptorLimitError(operation: "set \(limit)", code: errno)
        }
    }

    /// This limit with the soft limit at the hard one. An unlimited hard limit is not one the kernel takes for
    /// descriptors (it refuses more than `fs.nr_open`), so then the soft limit goes to `kernelCeiling`.
    package func raised(kernelCeiling: UInt64?) -> DescriptorLimit {
        var target = hard
        if hard == Self.unlimited {
            guard let kernelCeiling else { return self }
            target = kernelCeiling
        }
        return DescriptorLimit(soft: max(soft, target), hard: hard)
    }

    /// What raising the soft limit came to.
    package struct Raise: Sendable {
        /// The limit before, `nil` when it could not be read.
        package var before: DescriptorLimit?
        /// The limit in force now, `nil` when it could not be read.
        package var after: DescriptorLimit?
        /// Why the limit could not be read or raised.
        package var error: DescriptorLimitError?
    }

    /// Raises the soft limit to the hard one, as Go programs do at start.
    package static func raiseSoftLimitToHard() -> Raise {
        let before: DescriptorLimit
        do {
            before = try current()
        } catch {
            return Raise(before: nil, after: nil, error: error)
        }
        let wanted = before.raised(kernelCeiling: kernelCeiling())
        guard wanted != before else { return Raise(before: before, after: before, error: nil) }
        do {
            try set(wanted)
            return Raise(before: before, after: (try? current()) ?? wanted, error: nil)
        } catch {
            return Raise(before: before, after: before, error: error)
        }
    }

    /// The most descriptors the kernel lets one process have (`fs.nr_open`).
    static func kernelCeiling() -> UInt64? {
        (try? String(contentsOfFile: "/proc/sys/fs/nr_open", encoding: .utf8))
            .flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// How many descriptors the process holds now (the entries of `/proc/self/fd`, less the one listing them),
    /// or `nil` where that cannot be read.
    package static func openCount() -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).map { max($0.count - 1, 0) }
    }

    #if canImport(Glibc)
        private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        private static let resource = RLIMIT_NOFILE
    #endif
}

/// The descriptor limit could not be read or set.
package struct DescriptorLimitError: Error, Sendable, CustomStringConvertible {
    /// What was tried: `read`, or `set soft N, hard M`.
    package var operation: String
    package var code: Int32

    package var description: String {
        "cannot \(operation) the open-file limit (RLIMIT_NOFILE): \(String(cString: strerror(code)))"
    }
}
