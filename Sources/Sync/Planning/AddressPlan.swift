import IPVSModel

/// Which service addresses to bind to or unbind from the dummy link.
package struct AddressPlan: Sendable, Hashable {
    package var bind: [IPAddress]
    package var unbind: [IPAddress]
    /// The dummy link's index, or `nil` when the link does not exist yet and is made before binding.
    package var linkIndex: Int32?

    /// Binds what is wanted and missing; unbinds only what ipvs-proxy bound and no longer wants.
    /// - Parameter only: The addresses to look at, when only they may differ from the desired ones; `nil`: all.
    package init(
        desired: Set<IPAddress>, onLink: Set<IPAddress>, owned: Set<IPAddress>, linkIndex: Int32? = nil,
        only: Set<IPAddress>? = nil
    ) {
        if let only {
            bind = only.filter { desired.contains($0) && !onLink.contains($0) }.sorted()
            unbind = only.filter { !desired.contains($0) && onLink.contains($0) && owned.contains($0) }.sorted()
        } else {
            bind = desired.subtracting(onLink).sorted()
            unbind = owned.intersection(onLink).subtracting(desired).sorted()
        }
        self.linkIndex = linkIndex
    }

    package var isEmpty: Bool { bind.isEmpty && unbind.isEmpty }
}
