import CNetNamespace
import Glibc
import InternetAddress
import KernelErrors
import KernelShim

/// A TCP socket bound in a network namespace, for a server that listens there while the process lives in
/// another (a daemon given `--netns`).
public enum BoundSocket {
    /// A non-blocking TCP socket in the namespace at `networkNamespacePath` (or the caller's), bound to
    /// `address`:`port`, not yet listening; the caller owns the descriptor.
    public static func tcp(
        address: IPAddress, port: UInt16, networkNamespacePath: String? = nil
    ) throws -> Int32 {
        let family = UInt16(address.family == .ipv4 ? AF_INET : AF_INET6)
        let result = address.bytes.withUnsafeBufferPointer {
            cnetns_bound_tcp_socket(networkNamespacePath, family, $0.baseAddress, port)
        }
        return try KernelCallError.check(result, "bind \(address.bracketedDescription):\(port)")
    }
}
