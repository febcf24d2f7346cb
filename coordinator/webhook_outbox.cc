#include "coordinator/webhook_outbox.h"

#include <httplib.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "common/fs_util.h"
#include "common/secure.h"
#include "coordinator/coordinator_metrics.h"

namespace reelfarm {

namespace {

constexpr size_t kMaxErrorChars = 512;
constexpr size_t kMaxSubsBytes = 64 << 10;
constexpr int kBatch = 32;

// The enqueue, once: SADD of the entry id to the delivery's seen set, and
// only when it was not there, the entry and its due time.
// KEYS: seen, entry, due. ARGV: entry id, due ms, field, value, ...
const char kEnqueueScript[] =
    "if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "redis.call('HSET', KEYS[2], unpack(ARGV, 3)) "
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) "
    "return 1";

std::string Cut(std::string s) {
  if (s.size() > kMaxErrorChars) s = s.substr(0, kMaxErrorChars) + "...";
  return s;
}

// The URL as logs and the API show it: scheme, host and port, not the path
// (some services put the endpoint's secret there).
std::string Redacted(const std::string& url) {
  auto u = ParseWebhookUrl(url);
  if (!u.ok()) return "(invalid URL)";
  return u->Origin() + "/...";
}

std::map<std::string, std::string> HashOf(const RedisReply& r) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    out[r.elements[i].str] = r.elements[i + 1].str;
  }
  return out;
}

int64_t ToInt(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (...) {
    return 0;
  }
}

Status FencedWrite(RedisClient* redis, const RedisClient::Fence& fence,
                   const std::vector<std::vector<std::string>>& cmds) {
  if (fence.key.empty()) return redis->Transaction(cmds).status();
  return redis->FencedTransaction(fence, "", cmds);
}

std::string SubsKey(const std::string& prefix, const std::string& delivery) {
  return prefix + "subs:" + delivery;
}

}  // namespace

// ---- the reconciler's pure part ------------------------------------------------

WebhookDeliveryView ViewOfDelivery(const FarmState& farm, const DeliveryRecord& d) {
  WebhookDeliveryView v;
  v.id = d.id;
  v.name = d.name;
  v.output_dir = d.output_dir;
  v.version = std::max(1, d.plan.version());
  v.created_ms = d.created_ms;
  // A job that never ran ended because of what it waited for: that run's
  // token tells its ends apart.
  std::function<uint64_t(const JobRecord&, int)> generation = [&](const JobRecord& j, int depth) {
    if (j.token > 0 || depth > 8) return j.token;
    uint64_t g = 0;
    for (const auto& dep : j.job.depends_on()) {
      if (const JobRecord* dj = farm.FindJob(dep)) g = std::max(g, generation(*dj, depth + 1));
    }
    return g;
  };
  for (const auto& jid : d.job_ids) {
    const JobRecord* j = farm.FindJob(jid);
    if (j == nullptr) continue;
    for (const auto& out : j->job.outputs()) {
      if (out.intermediate()) continue;
      WebhookDeliveryView::Item item;
      item.deliverable = out.deliverable();
      item.preset = out.preset();
      item.path = out.relative_path();
      item.delivered = j->state == JobState::kSucceeded;
      item.failed = j->state == JobState::kFailed;
      if (!item.delivered && !item.failed) {
        v.items.push_back(std::move(item));
        continue;
      }
      for (const auto& r : j->result.outputs()) {
        if (r.deliverable() != out.deliverable()) continue;
        item.sha256 = r.sha256();
        item.bytes = static_cast<int64_t>(r.bytes());
      }
      if (item.failed) item.error = Cut(j->error);
      item.generation = generation(*j, 0);
      v.items.push_back(std::move(item));
    }
  }
  for (const auto& f : d.plan.failures()) {
    WebhookDeliveryView::Item item;
    item.deliverable = f.deliverable();
    item.preset = f.preset();
    item.path = f.relative_path();
    item.failed = true;
    item.error = Cut(f.reason());
    v.items.push_back(std::move(item));
  }
  DeliveryCounts c = farm.Counts(d);
  v.finished = d.finished && !d.manifest_pending;
  v.finished_ms = d.finished_ms;
  v.state = c.state;
  v.delivered = c.delivered;
  v.failed = c.failed;
  v.cancelled = c.cancelled;
  return v;
}

std::vector<WebhookEvent> DeriveWebhookEvents(
    const WebhookDeliveryView& v, int64_t now_ms,
    const std::function<bool(const std::string& id)>& wanted) {
  std::vector<WebhookEvent> out;
  const nlohmann::json base = {{"delivery", v.id}, {"name", v.name}, {"version", v.version}};
  WebhookEvent e;
  // Names the event; false when it is not wanted (its data is not built).
  auto name = [&](const std::string& type, const std::string& key_tail) {
    e = WebhookEvent{};
    e.key = v.id + "|" + type + (key_tail.empty() ? "" : "|" + key_tail);
    e.id = WebhookMessageId(e.key);
    e.type = type;
    return !wanted || wanted(e.id);
  };
  auto add = [&](const nlohmann::json& data) {
    e.body = BuildWebhookBody(e.type, now_ms, data);
    out.push_back(std::move(e));
  };
  if (name(kEventDeliveryAccepted, "")) {
    nlohmann::json accepted = base;
    accepted["output_dir"] = v.output_dir;
    accepted["created"] = Iso8601Millis(v.created_ms);
    nlohmann::json names = nlohmann::json::array();
    for (const auto& item : v.items) names.push_back(item.deliverable);
    accepted["deliverables"] = std::move(names);
    add(accepted);
  }
  for (const auto& item : v.items) {
    if (!item.delivered && !item.failed) continue;
    const std::string tail = item.deliverable + "|" + std::to_string(item.generation);
    if (!name(item.delivered ? kEventDeliverablePublished : kEventDeliverableFailed, tail)) {
      continue;
    }
    nlohmann::json data = base;
    data["deliverable"] = item.deliverable;
    data["preset"] = item.preset;
    data["path"] = item.path;
    data["output_dir"] = v.output_dir;
    if (item.delivered) {
      data["sha256"] = item.sha256;
      data["bytes"] = item.bytes;
    } else {
      data["error"] = item.error;
    }
    add(data);
  }
  if (v.finished && name(kEventDeliveryFinished, std::to_string(v.finished_ms))) {
    nlohmann::json data = base;
    data["state"] = v.state;
    data["delivered"] = v.delivered;
    data["failed"] = v.failed;
    data["cancelled"] = v.cancelled;
    data["output_dir"] = v.output_dir;
    data["manifest"] = v.output_dir + "/manifest.json";
    data["finished"] = Iso8601Millis(v.finished_ms);
    add(data);
  }
  return out;
}

std::string WebhookEntryId(const std::string& msg_id, const WebhookTarget& target) {
  return msg_id + "_" + Sha256Hex(target.ref + "|" + target.url).substr(0, 12);
}

// ---- subscriptions -------------------------------------------------------------------

std::vector<SpecError> ReadWebhookSubscriptions(const DeliverySpec& spec,
                                                const std::vector<WebhookSpec>& extra,
                                                const std::vector<std::string>& allowed_roots,
                                                const WebhookAllowList& allow,
                                                std::vector<WebhookSubscription>* out) {
  std::vector<SpecError> errors;
  std::vector<WebhookSpec> all = spec.webhooks;
  // The request's own (`reelfarm submit --webhook`): checked as the spec's
  // are, named apart from them.
  for (size_t i = 0; i < extra.size(); ++i) {
    const std::string field = "request.webhooks[" + std::to_string(i) + "]";
    auto url = ParseWebhookUrl(extra[i].url);
    if (!url.ok()) {
      errors.push_back({spec.spec_file, 0, field + ".url", url.status().message()});
      continue;
    }
    if (extra[i].secret_file.empty() || extra[i].secret_file[0] != '/') {
      errors.push_back({spec.spec_file, 0, field + ".secret_file", "must be an absolute path"});
      continue;
    }
    if (!allowed_roots.empty() && !PathInsideRoots(extra[i].secret_file, allowed_roots)) {
      errors.push_back({spec.spec_file, 0, field + ".secret_file",
                        extra[i].secret_file + " is outside the folders this farm may use"});
      continue;
    }
    all.push_back(extra[i]);
  }
  if (all.size() > 2 * kMaxSpecWebhooks) {
    errors.push_back({spec.spec_file, 0, "webhooks", "too many webhooks"});
    return errors;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    const WebhookSpec& hook = all[i];
    const std::string field =
        i < spec.webhooks.size()
            ? "webhooks[" + std::to_string(i) + "]"
            : "request.webhooks[" + std::to_string(i - spec.webhooks.size()) + "]";
    WebhookSubscription sub;
    sub.url = hook.url;
    sub.events = hook.events;
    // An IP literal that may not receive webhooks is refused now; names
    // are checked (resolved) at each send.
    auto url = ParseWebhookUrl(hook.url);
    sockaddr_storage addr;
    if (url.ok() && ParseIpLiteral(url->host, &addr)) {
      std::string why =
          WebhookAddressProblem(url->host, reinterpret_cast<const sockaddr*>(&addr), allow);
      if (!why.empty()) errors.push_back({spec.spec_file, hook.line, field + ".url", why});
    }
    auto text = ReadSmallFile(hook.secret_file, kMaxWebhookSecretFileBytes);
    if (!text.ok()) {
      errors.push_back({spec.spec_file, hook.secret_file_line, field + ".secret_file",
                        "cannot read " + hook.secret_file + ": " + text.status().message()});
      continue;
    }
    auto key = ParseWebhookSecret(*text);
    if (!key.ok()) {
      errors.push_back({spec.spec_file, hook.secret_file_line, field + ".secret_file",
                        hook.secret_file + ": " + key.status().message()});
      continue;
    }
    sub.key = *key;
    out->push_back(std::move(sub));
  }
  return errors;
}

bool ParseRequestWebhooks(const nlohmann::json& list, std::vector<WebhookSpec>* out) {
  if (!list.is_array() || list.size() > kMaxSpecWebhooks) return false;
  for (const auto& w : list) {
    if (!w.is_object() || !w.contains("url") || !w["url"].is_string() ||
        !w.contains("secret_file") || !w["secret_file"].is_string() ||
        (w.contains("events") && !w["events"].is_array())) {
      return false;
    }
    WebhookSpec hook;
    hook.url = w["url"].get<std::string>();
    hook.secret_file = w["secret_file"].get<std::string>();
    for (const auto& e : w.value("events", nlohmann::json::array())) {
      if (!e.is_string() || !IsWebhookEventType(e.get<std::string>())) return false;
      hook.events.push_back(e.get<std::string>());
    }
    out->push_back(std::move(hook));
  }
  return true;
}

// ---- the outbox ---------------------------------------------------------------------

WebhookOutbox::WebhookOutbox(WebhookOptions options, RedisClient* redis,
                             const RedisEndpoint& endpoint, Clock* clock, std::string prefix)
    : options_(std::move(options)),
      redis_(redis),
      api_redis_(std::make_unique<RedisClient>(endpoint, 3000)),
      clock_(clock),
      prefix_(std::move(prefix)) {
  options_.retry.Sanitize();
  if (options_.max_dead_letters == 0) options_.max_dead_letters = 1;
}

Status WebhookOutbox::Init() {
  for (const auto& entry : options_.allow) {
    Status s = allow_.Add(entry);
    if (!s.ok()) return Status::InvalidArgument("--webhook-allow " + s.message());
  }
  for (const auto& url : options_.urls) {
    auto u = ParseWebhookUrl(url);
    if (!u.ok()) {
      return Status::InvalidArgument("--webhook " + Redacted(url) + ": " + u.status().message());
    }
  }
  if (!options_.urls.empty() && options_.secret_file.empty()) {
    return Status::InvalidArgument("--webhook needs --webhook-secret-file (whsec_<base64>)");
  }
  if (!options_.secret_file.empty()) {
    auto text = ReadSmallFile(options_.secret_file, kMaxWebhookSecretFileBytes);
    if (!text.ok()) {
      return Status::InvalidArgument("--webhook-secret-file " + options_.secret_file + ": " +
                                     text.status().message());
    }
    auto key = ParseWebhookSecret(*text);
    if (!key.ok()) {
      return Status::InvalidArgument("--webhook-secret-file " + options_.secret_file + ": " +
                                     key.status().message());
    }
    farm_key_ = *key;
  }
  // When each farm-wide URL was first configured: deliveries before it are
  // not reported to it (adding a webhook does not replay the farm's past).
  const std::string since_key = prefix_ + "since";
  for (const auto& url : options_.urls) {
    Status s = FencedWrite(redis_, fence_,
                           {{"HSETNX", since_key, url, std::to_string(clock_->WallMillis())}});
    if (!s.ok()) return s;
    auto got = redis_->Command({"HGET", since_key, url});
    if (!got.ok()) return got.status();
    since_[url] = ToInt(got->str);
  }
  return Status::OK();
}

Status WebhookOutbox::Write(RedisClient* redis, const std::vector<std::vector<std::string>>& cmds) {
  return FencedWrite(redis, fence_, cmds);
}

Status WebhookOutbox::SaveSubscriptions(RedisClient* redis, const RedisClient::Fence& fence,
                                        const std::string& prefix, const std::string& delivery_id,
                                        const std::vector<WebhookSubscription>& subs) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : subs) {
    list.push_back({{"url", s.url}, {"secret", Base64Encode(s.key)}, {"events", s.events}});
  }
  return FencedWrite(redis, fence, {{"SET", SubsKey(prefix, delivery_id), list.dump()}});
}

void WebhookOutbox::AddSubscriptions(const std::string& delivery_id,
                                     std::vector<WebhookSubscription> subs) {
  if (!subs.empty()) subs_[delivery_id] = std::move(subs);
}

Status WebhookOutbox::Load(const std::vector<std::string>& delivery_ids) {
  for (size_t start = 0; start < delivery_ids.size(); start += 256) {
    std::vector<std::vector<std::string>> cmds;
    const size_t end = std::min(delivery_ids.size(), start + 256);
    for (size_t i = start; i < end; ++i) {
      cmds.push_back({"GET", SubsKey(prefix_, delivery_ids[i])});
      cmds.push_back({"SMEMBERS", prefix_ + "seen:" + delivery_ids[i]});
    }
    auto replies = redis_->Pipeline(cmds);
    if (!replies.ok()) return replies.status();
    for (size_t i = start; i < end; ++i) {
      const RedisReply& subs = (*replies)[2 * (i - start)];
      const RedisReply& seen = (*replies)[2 * (i - start) + 1];
      if (subs.type == RedisReply::Type::kString && subs.str.size() <= kMaxSubsBytes) {
        nlohmann::json list = nlohmann::json::parse(subs.str, nullptr, false);
        std::vector<WebhookSubscription> out;
        if (list.is_array()) {
          for (const auto& s : list) {
            if (!s.is_object()) continue;
            WebhookSubscription sub;
            sub.url = s.value("url", "");
            auto key = Base64Decode(s.value("secret", ""));
            if (key.ok()) sub.key = *key;
            if (s.contains("events") && s["events"].is_array()) {
              for (const auto& e : s["events"]) {
                if (e.is_string()) sub.events.push_back(e.get<std::string>());
              }
            }
            out.push_back(std::move(sub));
          }
        }
        AddSubscriptions(delivery_ids[i], std::move(out));
      }
      auto& ids = seen_[delivery_ids[i]];
      for (const auto& e : seen.elements) ids.insert(e.str);
    }
  }
  return Status::OK();
}

std::vector<WebhookTarget> WebhookOutbox::TargetsOf(const WebhookDeliveryView& v) const {
  std::vector<WebhookTarget> out;
  for (const auto& url : options_.urls) {
    auto since = since_.find(url);
    WebhookTarget t;
    t.url = url;
    t.ref = "farm";
    t.since_ms = since == since_.end() ? 0 : since->second;
    out.push_back(std::move(t));
  }
  auto subs = subs_.find(v.id);
  if (subs != subs_.end()) {
    for (size_t i = 0; i < subs->second.size(); ++i) {
      WebhookTarget t;
      t.url = subs->second[i].url;
      t.ref = v.id + "#" + std::to_string(i);
      t.events = subs->second[i].events;
      out.push_back(std::move(t));
    }
  }
  return out;
}

Status WebhookOutbox::Reconcile(const std::vector<WebhookDeliveryView>& views) {
  const int64_t now = clock_->WallMillis();
  std::vector<std::vector<std::string>> cmds;
  std::vector<std::pair<std::string, std::string>> added;  // delivery, entry id
  for (const auto& v : views) {
    std::vector<WebhookTarget> targets = TargetsOf(v);
    if (targets.empty()) continue;
    // A farm-wide URL configured after the delivery was created gets none
    // of its events.
    targets.erase(std::remove_if(targets.begin(), targets.end(),
                                 [&](const WebhookTarget& t) { return t.since_ms > v.created_ms; }),
                  targets.end());
    if (targets.empty()) continue;
    auto& seen = seen_[v.id];
    auto wants = [&](const WebhookTarget& t, const std::string& type) {
      return t.events.empty() ||
             std::find(t.events.begin(), t.events.end(), type) != t.events.end();
    };
    // Only events some endpoint has not been sent yet are built.
    auto unsent = [&](const std::string& id) {
      for (const auto& t : targets) {
        if (seen.count(WebhookEntryId(id, t)) == 0) return true;
      }
      return false;
    };
    int n = 0;
    for (const auto& e : DeriveWebhookEvents(v, now, unsent)) {
      for (const auto& t : targets) {
        if (!wants(t, e.type)) continue;
        const std::string entry = WebhookEntryId(e.id, t);
        if (seen.count(entry) != 0) continue;
        // Due in the order they happened.
        cmds.push_back({"EVAL",
                        kEnqueueScript,
                        "3",
                        prefix_ + "seen:" + v.id,
                        prefix_ + "e:" + entry,
                        prefix_ + "due",
                        entry,
                        std::to_string(now + n++),
                        "msg_id",
                        e.id,
                        "type",
                        e.type,
                        "url",
                        t.url,
                        "ref",
                        t.ref,
                        "delivery",
                        v.id,
                        "body",
                        e.body,
                        "attempts",
                        "0",
                        "last_error",
                        "",
                        "created_ms",
                        std::to_string(now)});
        added.emplace_back(v.id, entry);
      }
    }
  }
  if (cmds.empty()) return Status::OK();
  Status s = Write(redis_, cmds);
  if (!s.ok()) {
    for (const auto& v : views) pending_.insert(v.id);
    spdlog::warn("cannot enqueue {} webhook messages (tried again): {}", cmds.size(), s.ToString());
    return s;
  }
  for (const auto& [delivery, entry] : added) seen_[delivery].insert(entry);
  if (on_enqueue_) on_enqueue_();
  return Status::OK();
}

std::set<std::string> WebhookOutbox::TakePending() {
  std::set<std::string> out;
  out.swap(pending_);
  return out;
}

StatusOr<nlohmann::json> WebhookOutbox::Describe(size_t max_listed) {
  std::lock_guard<std::mutex> lock(api_mu_);
  const std::string n = std::to_string(max_listed == 0 ? 0 : max_listed - 1);
  auto replies = api_redis_->Pipeline({{"ZCARD", prefix_ + "due"},
                                       {"ZRANGE", prefix_ + "due", "0", n, "WITHSCORES"},
                                       {"LLEN", prefix_ + "dead"},
                                       {"LRANGE", prefix_ + "dead", "0", n}});
  if (!replies.ok()) return replies.status();
  nlohmann::json queued = nlohmann::json::array();
  const auto& due = (*replies)[1].elements;
  std::vector<std::vector<std::string>> gets;
  for (size_t i = 0; i + 1 < due.size(); i += 2) {
    gets.push_back({"HMGET", prefix_ + "e:" + due[i].str, "msg_id", "type", "url", "delivery",
                    "attempts", "last_error"});
  }
  if (!gets.empty()) {
    auto got = api_redis_->Pipeline(gets);
    if (!got.ok()) return got.status();
    for (size_t i = 0; i < got->size(); ++i) {
      const auto& f = (*got)[i].elements;
      if (f.size() < 6) continue;
      queued.push_back({{"entry", due[2 * i].str},
                        {"webhook_id", f[0].str},
                        {"type", f[1].str},
                        {"url", Redacted(f[2].str)},
                        {"delivery", f[3].str},
                        {"attempts", ToInt(f[4].str)},
                        {"last_error", f[5].str},
                        {"due_ms", ToInt(due[2 * i + 1].str)}});
    }
  }
  nlohmann::json dead = nlohmann::json::array();
  for (const auto& e : (*replies)[3].elements) {
    nlohmann::json d = nlohmann::json::parse(e.str, nullptr, false);
    if (!d.is_object()) continue;
    d.erase("body");
    if (d.contains("url") && d["url"].is_string()) d["url"] = Redacted(d["url"]);
    dead.push_back(std::move(d));
  }
  return nlohmann::json{
      {"queue", (*replies)[0].integer},        {"queued", queued},
      {"dead_letters", (*replies)[2].integer}, {"dead", dead},
      {"farm_webhooks", options_.urls.size()}, {"attempts", options_.retry.attempts}};
}

Status WebhookOutbox::Redeliver(const std::string& entry_id) {
  std::lock_guard<std::mutex> lock(api_mu_);
  auto list = api_redis_->Command(
      {"LRANGE", prefix_ + "dead", "0", std::to_string(options_.max_dead_letters)});
  if (!list.ok()) return list.status();
  for (const auto& e : list->elements) {
    nlohmann::json d = nlohmann::json::parse(e.str, nullptr, false);
    if (!d.is_object() || d.value("entry", "") != entry_id) continue;
    std::vector<std::string> hset = {"HSET", prefix_ + "e:" + entry_id};
    hset.push_back("msg_id");
    hset.push_back(d.value("webhook_id", ""));
    for (const char* f : {"type", "url", "ref", "delivery", "body"}) {
      hset.push_back(f);
      hset.push_back(d.value(f, ""));
    }
    for (const auto& kv : std::vector<std::pair<std::string, std::string>>{
             {"attempts", "0"},
             {"last_error", ""},
             {"created_ms", std::to_string(d.value("created_ms", int64_t{0}))}}) {
      hset.push_back(kv.first);
      hset.push_back(kv.second);
    }
    Status s = Write(api_redis_.get(),
                     {{"LREM", prefix_ + "dead", "1", e.str},
                      hset,
                      {"ZADD", prefix_ + "due", std::to_string(clock_->WallMillis()), entry_id}});
    if (s.ok() && on_enqueue_) on_enqueue_();
    return s;
  }
  return Status::NotFound("no dead letter " + entry_id);
}

// ---- sending -------------------------------------------------------------------------

WebhookPostResult PostWebhook(const WebhookUrl& url,
                              const std::multimap<std::string, std::string>& headers,
                              const std::string& body, const WebhookAllowList& allow,
                              std::chrono::milliseconds connect_timeout,
                              std::chrono::milliseconds io_timeout) {
  WebhookPostResult out;
  // Resolve once; every address must pass, and the connection goes to the
  // one checked (httplib is told the address: it does not resolve again).
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(url.host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    out.error = "cannot resolve " + url.host + ": " + gai_strerror(rc);
    return out;
  }
  std::string chosen;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    std::string why = WebhookAddressProblem(url.host, ai->ai_addr, allow);
    if (!why.empty()) {
      freeaddrinfo(res);
      out.error = "refused: " + why;
      return out;
    }
    if (chosen.empty()) chosen = AddressString(ai->ai_addr);
  }
  freeaddrinfo(res);
  if (chosen.empty()) {
    out.error = "no address for " + url.host;
    return out;
  }
  httplib::Client client(url.Origin());
  client.set_hostname_addr_map({{url.host, chosen}});
  client.set_follow_location(false);
  client.set_keep_alive(false);
  client.set_connection_timeout(connect_timeout);
  client.set_read_timeout(io_timeout);
  client.set_write_timeout(io_timeout);
  client.set_compress(false);
  httplib::Request req;
  req.method = "POST";
  req.path = url.target;
  for (const auto& [k, v] : headers) req.set_header(k, v);
  req.body = body;
  // Only the status counts: the body is never read (a huge or endless
  // answer cannot hold the sender or its memory).
  int status = 0;
  req.response_handler = [&status](const httplib::Response& r) {
    status = r.status;
    return false;
  };
  req.content_receiver = [](const char*, size_t, uint64_t, uint64_t) { return false; };
  httplib::Response response;
  httplib::Error err = httplib::Error::Success;
  // A 204 (no body) is complete without the handler being called.
  if (client.send(req, response, err) && status == 0) status = response.status;
  out.status = status;
  if (status >= 200 && status < 300) return out;
  if (status != 0) {
    out.error = "HTTP " + std::to_string(status);
  } else {
    out.error = "POST to " + url.Origin() + " (" + chosen + ") failed: " + httplib::to_string(err);
  }
  return out;
}

WebhookSender::WebhookSender(const WebhookOutbox* outbox, const RedisEndpoint& endpoint,
                             RedisClient::Fence fence, Clock* clock, CoordinatorMetrics* metrics,
                             std::string prefix)
    : outbox_(outbox),
      redis_(std::make_unique<RedisClient>(endpoint, 3000)),
      fence_(std::move(fence)),
      clock_(clock),
      metrics_(metrics),
      prefix_(std::move(prefix)) {
  unit_random_ = outbox_->options().unit_random;
  if (!unit_random_) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    unit_random_ = [rng] { return std::uniform_real_distribution<double>(0, 1)(*rng); };
  }
}

WebhookSender::~WebhookSender() { Stop(); }

void WebhookSender::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void WebhookSender::Stop(bool send_due) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    send_due_ = send_due;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WebhookSender::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

Status WebhookSender::Write(const std::vector<std::vector<std::string>>& cmds) {
  return FencedWrite(redis_.get(), fence_, cmds);
}

void WebhookSender::UpdateGauges() {
  if (metrics_ == nullptr) return;
  auto r = redis_->Pipeline({{"ZCARD", prefix_ + "due"}, {"LLEN", prefix_ + "dead"}});
  if (!r.ok()) return;
  metrics_->SetWebhookQueue(static_cast<double>((*r)[0].integer),
                            static_cast<double>((*r)[1].integer));
}

StatusOr<std::string> WebhookSender::KeyOf(const std::string& ref) {
  if (ref == "farm") {
    if (outbox_->farm_key().empty()) return Status::NotFound("no --webhook-secret-file");
    return outbox_->farm_key();
  }
  const size_t hash = ref.rfind('#');
  if (hash == std::string::npos) return Status::NotFound("unknown secret reference");
  const std::string delivery = ref.substr(0, hash);
  const size_t index = static_cast<size_t>(ToInt(ref.substr(hash + 1)));
  auto got = redis_->Command({"GET", SubsKey(prefix_, delivery)});
  if (!got.ok()) return got.status();
  if (got->type != RedisReply::Type::kString || got->str.size() > kMaxSubsBytes) {
    return Status::NotFound("the delivery's webhooks are gone");
  }
  nlohmann::json list = nlohmann::json::parse(got->str, nullptr, false);
  if (!list.is_array() || index >= list.size() || !list[index].is_object()) {
    return Status::NotFound("the delivery's webhook is gone");
  }
  auto key = Base64Decode(list[index].value("secret", ""));
  if (!key.ok() || key->empty()) return Status::NotFound("the webhook's secret is unreadable");
  return *key;
}

void WebhookSender::Attempt(const std::string& entry_id) {
  const std::string entry_key = prefix_ + "e:" + entry_id;
  auto got = redis_->Command({"HGETALL", entry_key});
  if (!got.ok()) return;
  auto e = HashOf(*got);
  if (e.empty()) {
    (void)Write({{"ZREM", prefix_ + "due", entry_id}});
    return;
  }
  const int attempts = static_cast<int>(ToInt(e["attempts"])) + 1;
  WebhookPostResult result;
  auto url = ParseWebhookUrl(e["url"]);
  auto key = KeyOf(e["ref"]);
  if (!url.ok()) {
    result.error = "invalid URL: " + url.status().message();
  } else if (!key.ok()) {
    if (key.status().code() == Status::Code::kUnavailable) return;  // Redis: later
    result.error = "no secret: " + key.status().message();
  } else {
    const int64_t ts = clock_->WallMillis() / 1000;
    std::multimap<std::string, std::string> headers = {
        {"webhook-id", e["msg_id"]},
        {"webhook-timestamp", std::to_string(ts)},
        {"webhook-signature", SignWebhook(*key, e["msg_id"], ts, e["body"])},
        {"Content-Type", "application/json"},
        {"User-Agent", std::string("reelfarm-webhooks/") + REELFARM_VERSION}};
    result = PostWebhook(*url, headers, e["body"], outbox_->allow(),
                         outbox_->options().connect_timeout, outbox_->options().io_timeout);
  }
  const auto& retry = outbox_->options().retry;
  const std::string shown = Redacted(e["url"]);
  if (result.error.empty()) {
    if (Write({{"DEL", entry_key}, {"ZREM", prefix_ + "due", entry_id}}).ok() && metrics_) {
      metrics_->OnWebhookAttempt("ok");
    }
    spdlog::debug("webhook {} {} to {}: HTTP {}", e["type"], e["msg_id"], shown, result.status);
    return;
  }
  const int64_t now = clock_->WallMillis();
  if (attempts >= retry.attempts) {
    nlohmann::json dead = {{"entry", entry_id},
                           {"webhook_id", e["msg_id"]},
                           {"type", e["type"]},
                           {"url", e["url"]},
                           {"ref", e["ref"]},
                           {"delivery", e["delivery"]},
                           {"body", e["body"]},
                           {"attempts", attempts},
                           {"last_error", Cut(result.error)},
                           {"created_ms", ToInt(e["created_ms"])},
                           {"dead_ms", now}};
    Status s = Write(
        {{"LPUSH", prefix_ + "dead", dead.dump()},
         {"LTRIM", prefix_ + "dead", "0", std::to_string(outbox_->options().max_dead_letters - 1)},
         {"DEL", entry_key},
         {"ZREM", prefix_ + "due", entry_id}});
    if (s.ok() && metrics_) metrics_->OnWebhookAttempt("dead");
    spdlog::error(
        "webhook {} {} to {} given up after {} attempts: {} (a dead letter; "
        "POST /api/v1/webhooks/dead/{}/redeliver sends it again)",
        e["type"], e["msg_id"], shown, attempts, result.error, entry_id);
    return;
  }
  const auto wait = WebhookBackoff(retry, attempts, unit_random_());
  Status s = Write({{"HSET", entry_key, "attempts", std::to_string(attempts), "last_error",
                     Cut(result.error), "last_attempt_ms", std::to_string(now)},
                    {"ZADD", prefix_ + "due", std::to_string(now + wait.count()), entry_id}});
  if (s.ok() && metrics_) metrics_->OnWebhookAttempt("failed");
  spdlog::warn("webhook {} {} to {} failed (attempt {} of {}): {}; again in {} ms", e["type"],
               e["msg_id"], shown, attempts, retry.attempts, result.error, wait.count());
}

void WebhookSender::Loop() {
  // After Stop(): one last pass over what is due, for up to kFinalPass (a
  // clean stop, `reelfarm run` ending, sends what it can; the rest waits
  // in Redis for the next start).
  constexpr auto kFinalPass = std::chrono::seconds(2);
  bool final_pass = false;
  SteadyTime give_up{};
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ && (final_pass || !send_due_)) return;
      if (stop_) {
        final_pass = true;
        give_up = clock_->Now() + kFinalPass;
      }
      woken_ = false;
    }
    const int64_t now = clock_->WallMillis();
    auto due = redis_->Command({"ZRANGEBYSCORE", prefix_ + "due", "-inf", std::to_string(now),
                                "LIMIT", "0", std::to_string(kBatch)});
    if (due.ok()) {
      for (const auto& id : due->elements) {
        if (final_pass && clock_->Now() > give_up) return;
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (stop_ && !final_pass) break;  // to the final pass, or out
        }
        Attempt(id.str);
      }
    }
    if (final_pass) return;
    UpdateGauges();
    // Until the next entry is due (at most a second: a standby's enqueues
    // after a takeover, a redelivery), or woken by an enqueue.
    int64_t wait_ms = 1000;
    if (due.ok() && static_cast<int>(due->elements.size()) == kBatch) {
      wait_ms = 0;
    } else {
      auto next = redis_->Command({"ZRANGE", prefix_ + "due", "0", "0", "WITHSCORES"});
      if (next.ok() && next->elements.size() == 2) {
        wait_ms = std::clamp<int64_t>(ToInt(next->elements[1].str) - clock_->WallMillis(), 0, 1000);
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (wait_ms > 0) {
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return stop_ || woken_; });
    }
  }
}

}  // namespace reelfarm
