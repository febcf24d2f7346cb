#include "common/proto_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/strutil.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <string_view>
#include <vector>

namespace reelfarm {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// One value of `field` (element `index` when repeated) into `out`; false
// for what only the printer handles.
bool ValueJson(const Message& m, const Reflection& r, const FieldDescriptor* field, int index,
               nlohmann::json* out);

bool MessageJsonByReflection(const Message& m, nlohmann::json* out) {
  const auto* desc = m.GetDescriptor();
  // Well-known types (Timestamp, Any, wrappers ...) have JSON forms of their own.
  if (std::string_view(desc->file()->name()).starts_with("google/protobuf/")) return false;
  const Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);  // set fields: what the printer prints by default
  *out = nlohmann::json::object();
  for (const FieldDescriptor* field : fields) {
    if (field->is_map() || field->is_extension()) return false;
    nlohmann::json& slot = (*out)[field->name()];
    if (field->is_repeated()) {
      slot = nlohmann::json::array();
      const int n = r->FieldSize(m, field);
      for (int i = 0; i < n; ++i) {
        if (!ValueJson(m, *r, field, i, &slot.emplace_back())) return false;
      }
    } else if (!ValueJson(m, *r, field, -1, &slot)) {
      return false;
    }
  }
  return true;
}

bool ValueJson(const Message& m, const Reflection& r, const FieldDescriptor* field, int index,
               nlohmann::json* out) {
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      *out = rep ? r.GetRepeatedInt32(m, field, index) : r.GetInt32(m, field);
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      *out = rep ? r.GetRepeatedUInt32(m, field, index) : r.GetUInt32(m, field);
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      *out = rep ? r.GetRepeatedBool(m, field, index) : r.GetBool(m, field);
      return true;
    case FieldDescriptor::CPPTYPE_STRING:
      if (field->type() == FieldDescriptor::TYPE_BYTES) return false;  // base64
      *out = rep ? r.GetRepeatedString(m, field, index) : r.GetString(m, field);
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      const double v = rep ? r.GetRepeatedDouble(m, field, index) : r.GetDouble(m, field);
      if (!std::isfinite(v)) return false;  // "NaN", "Infinity"
      // The printer's text, parsed: its number type and value, exactly.
      *out = nlohmann::json::parse(google::protobuf::SimpleDtoa(v));
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageJsonByReflection(
          rep ? r.GetRepeatedMessage(m, field, index) : r.GetMessage(m, field), out);
    default:  // 64-bit integers (strings in JSON), enums (names), floats
      return false;
  }
}

}  // namespace

nlohmann::json ProtoJsonByPrinter(const Message& m, bool print_defaults) {
  std::string text;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = print_defaults;
  (void)google::protobuf::util::MessageToJsonString(m, &text, opts);
  return nlohmann::json::parse(text, nullptr, false);
}

nlohmann::json ProtoJson(const Message& m) {
  nlohmann::json out;
  if (MessageJsonByReflection(m, &out)) return out;
  return ProtoJsonByPrinter(m);
}

}  // namespace reelfarm
