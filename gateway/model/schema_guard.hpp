// The last gate before publishing: whatever a connector filled, what leaves is valid
// interaction.v1. Invalid optional values (a page_url that is not a URI, an empty name, a
// language tag with a line break, a latitude of 1000, an entity that is not an object, a
// free object nested too deep) are dropped and counted in omnigate_dropped_values_total;
// a time outside 1970..9999 is replaced (occurred_at by received_at, captured_at by
// occurred_at). Values nothing can replace (an empty native_id, a kind outside the enum, a
// kind without its section) make the submission an invalid_field error: nothing is published.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "gateway/core/metrics.hpp"
#include "gateway/model/interaction.hpp"

namespace omnigate {

// Makes `interaction` (after enrich: id and received_at set) valid by dropping what is not.
// Returns the paths of what was dropped ("source.page_url", "message.entities", ...).
Result<std::vector<std::string>> make_schema_valid(Interaction& interaction);

// make_schema_valid, counting each dropped value by channel and field.
Status enforce_schema(Interaction& interaction, Metrics& metrics);

// Whether arrays and objects in `value` nest at most `max_depth` deep (no recursion).
bool json_value_depth_within(const nlohmann::json& value, size_t max_depth);

}  // namespace omnigate
