import CNetNamespace
import KernelErrors
import KernelShim

/// Writes kernel settings (`/proc/sys`) of one network namespace.
public struct KernelSettings: Sendable {
    public let networkNamespacePath: String?

    public init(networkNamespacePath: String? = nil) {
        self.networkNamespacePath = networkNamespacePath
    }

    /// Sets a sysctl given as `net/ipv4/vs/conntrack` (or `net.ipv4.vs.conntrack`), or writes a file given by its
    /// absolute path (a module parameter under `/sys/module`).
    public func set(_ name: String, to value: String) throws {
        let path = name.hasPrefix("/") ? name : "/proc/sys/" + name.replacingDots()
        try KernelCallError.check(
            cnetns_sysctl_write(networkNamespacePath, path, value + "\n"), "set sysctl \(name)=\(value)")
    }
}

extension String {
    fileprivate func replacingDots() -> String {
        String(map { $0 == "." ? "/" : $0 })
    }
}
