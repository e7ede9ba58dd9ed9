import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The process's own privileges, checked before touching the kernel so that a missing one is said plainly.
public enum Privileges {
    /// The capability number of `CAP_NET_ADMIN`.
    static let netAdmin = 12

    /// Whether the calling thread's effective capabilities include `CAP_NET_ADMIN`, which every IPVS,
    /// link and address call needs. `nil` when the kernel does not say (no /proc).
    public static func hasNetworkAdministration() -> Bool? {
        guard let status = try? readStatus(),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }, radix: 16)
        else { return nil }
        return mask & (1 << UInt64(netAdmin)) != 0
    }

    /// The message for a process without `CAP_NET_ADMIN`.
    public static let missingNetworkAdministration =
        "ipvs-proxy needs the CAP_NET_ADMIN capability to read and change IPVS, links and addresses: "
        + "run it as root (or grant CAP_NET_ADMIN, e.g. a container with NET_ADMIN)"

    private static func readStatus() throws -> String {
        let descriptor = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Errno(rawValue: errno) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count <= 0 { break }
            bytes += buffer.prefix(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
