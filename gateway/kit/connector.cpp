#include "gateway/kit/connector.hpp"

namespace omnigate {

std::vector<ConnectorRegistration>& connector_registry() {
  static std::vector<ConnectorRegistration> registry;
  return registry;
}

ConnectorRegistrar::ConnectorRegistrar(std::string channel, ConnectorFactory factory) {
  connector_registry().push_back({std::move(channel), std::move(factory)});
}

}  // namespace omnigate
