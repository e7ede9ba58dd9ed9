/// The kernel's table as ipvs-proxy last saw it, keyed by virtual server.
public typealias ObservedTable = [VirtualServerKey: VirtualServerState]

extension Dictionary where Key == VirtualServerKey, Value == VirtualServerState {
    /// Follows an operation the kernel accepted, so that the model stays the kernel's table without a dump.
    /// New real servers start with no connections.
    public mutating func apply(_ operation: TableOperation) {
        switch operation {
        case .addVirtualServer(let server):
            var kernel = server
            kernel.flags.insert(.hashed)
            self[server.key] = VirtualServerState(server: kernel)
        case .editVirtualServer(let server):
            var kernel = server
            kernel.flags.insert(.hashed)
            self[server.key]?.server = kernel
        case .deleteVirtualServer(let key):
            self[key] = nil
        case .addRealServer(let real, let key):
            self[key]?.realServers.append(RealServerState(server: real))
        case .editRealServer(let real, let key):
            if let index = self[key]?.realServers.firstIndex(where: { $0.server.key == real.key }) {
                self[key]?.realServers[index].server = real
            }
        case .deleteRealServer(let real, let key):
            self[key]?.realServers.removeAll { $0.server.key == real }
        }
    }
}
