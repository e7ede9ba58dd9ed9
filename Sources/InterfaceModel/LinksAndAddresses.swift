import InternetAddress
import KernelErrors

/// A network link (interface) as the kernel reports it.
public struct NetworkLink: Sendable, Hashable {
    public var index: Int32
    public var name: String
    /// The link kind (`dummy`, `veth`, ...), or empty when the kernel does not say.
    public var kind: String
    /// `IFF_*` flags.
    public var flags: UInt32

    public init(index: Int32, name: String, kind: String = "", flags: UInt32 = 0) {
        self.index = index
        self.name = name
        self.kind = kind
        self.flags = flags
    }

    /// Whether this is a loopback link (`IFF_LOOPBACK`).
    public var isLoopback: Bool { flags & 0x8 != 0 }
}

/// An address assigned to a link.
public struct InterfaceAddress: Sendable, Hashable, CustomStringConvertible {
    public var linkIndex: Int32
    public var address: IPAddress
    public var prefixLength: UInt8

    public init(linkIndex: Int32, address: IPAddress, prefixLength: UInt8? = nil) {
        self.linkIndex = linkIndex
        self.address = address
        self.prefixLength = prefixLength ?? address.family.hostPrefixLength
    }

    public var description: String { "\(address)/\(prefixLength) on link \(linkIndex)" }
}

/// An address to bind to or unbind from a link.
public enum AddressChange: Sendable, Hashable, CustomStringConvertible {
    case bind(InterfaceAddress)
    case unbind(InterfaceAddress)

    public var address: InterfaceAddress {
        switch self {
        case .bind(let address), .unbind(let address): address
        }
    }

    public var description: String {
        switch self {
        case .bind(let address): "bind \(address)"
        case .unbind(let address): "unbind \(address)"
        }
    }
}

/// An address change that the kernel refused.
public struct AddressChangeFailure: Sendable, Hashable, CustomStringConvertible {
    public let index: Int
    public let change: AddressChange
    public let error: KernelCallError

    public init(index: Int, change: AddressChange, error: KernelCallError) {
        self.index = index
        self.change = change
        self.error = error
    }

    public var description: String { "change \(index): \(error)" }
}

/// What the kernel announced about addresses since the last look.
public enum AddressAnnouncement: Sendable, Equatable {
    /// Addresses were added to or removed from these links (one entry per address).
    case changed(links: [Int32])
    /// Announcements were lost (the socket's buffer overflowed): any address may have changed.
    case lost
}
