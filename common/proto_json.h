// JSON of protobuf messages as nlohmann::json values.
#ifndef REELFARM_COMMON_PROTO_JSON_H_
#define REELFARM_COMMON_PROTO_JSON_H_

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>

namespace reelfarm {

// `m` as protobuf's JSON printer writes it (proto field names, fields at
// their default left out), parsed: ProtoJsonByPrinter's value, built by
// reflection. The printer resolves the message's type anew on every call and
// was most of the cost of a submission's cache keys. Numbers are the
// printer's text parsed (25.0 is the integer 25, as it was); messages with
// field types the keys do not use (64-bit integers, enums, floats, bytes,
// maps, well-known types) or non-finite doubles take the printer's way.
nlohmann::json ProtoJson(const google::protobuf::Message& m);

// The same through the printer (the reference; null when it fails). With
// `print_defaults`, scalar and repeated fields at their default are
// printed too (the manifest's source facts show every field).
nlohmann::json ProtoJsonByPrinter(const google::protobuf::Message& m, bool print_defaults = false);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_PROTO_JSON_H_
