#include "coordinator/eta.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace reelfarm {
namespace {

// Encode seconds measured for some kind of work, and the cost they covered.
struct Sample {
  double cost = 0;
  double seconds = 0;
  int jobs = 0;
};

// Seconds the running attempt of `j` has run; 0 when unknown.
double RunSeconds(const JobRecord& j, SteadyTime now) {
  if (j.started_at == SteadyTime{}) return 0;
  return std::chrono::duration<double>(now - j.started_at).count();
}

// How long a job takes on this farm, learned from the jobs that succeeded.
class SpeedModel {
 public:
  void Learn(const JobRecord& j) {
    const double seconds = j.result.encode_seconds();
    if (seconds <= 0) return;
    const double cost = std::max(0.0, j.job.cost());
    for (Sample* s : {&by_preset_[Key(j)], &by_kind_[j.job.kind()]}) {
      s->cost += cost;
      s->seconds += seconds;
      ++s->jobs;
    }
    // The farm's pace per unit of cost, carried over to kinds not measured
    // yet, from encodes only: the cost of the source's analysis, a sound
    // part or a stream copy is no encoder's (the analysis, the first job
    // to end, would make every encode look slower than it is).
    if (Encodes(j.job.kind())) {
      all_.cost += cost;
      all_.seconds += seconds;
      ++all_.jobs;
    }
    shortest_ = shortest_ > 0 ? std::min(shortest_, seconds) : seconds;
  }

  // A running job far enough along tells its preset's pace before any job
  // of that preset has ended: its whole run at the pace so far.
  void LearnRunning(const JobRecord& j, SteadyTime now) {
    const double p = std::clamp(j.progress, 0.0, 1.0);
    const double elapsed = RunSeconds(j, now);
    if (p < kLiveProgress || j.job.cost() <= 0 || elapsed <= 0) return;
    Sample& s = live_by_preset_[Key(j)];
    s.cost += j.job.cost();
    s.seconds += elapsed / p;
    ++s.jobs;
  }

  // Seconds, or nothing when no measurement speaks for this job.
  std::optional<double> Duration(const JobRecord& j) const {
    auto scaled = [&](const Sample& s) -> std::optional<double> {
      if (s.jobs == 0) return std::nullopt;
      if (s.cost > 0 && j.job.cost() > 0) return j.job.cost() * s.seconds / s.cost;
      return s.seconds / s.jobs;
    };
    if (auto it = by_preset_.find(Key(j)); it != by_preset_.end()) return scaled(it->second);
    if (auto it = live_by_preset_.find(Key(j)); it != live_by_preset_.end()) {
      return scaled(it->second);
    }
    if (auto it = by_kind_.find(j.job.kind()); it != by_kind_.end()) return scaled(it->second);
    // Another kind of work: only its cost can carry the farm's pace over,
    // and no job here took less than the shortest one measured (starting
    // FFmpeg, verifying, hashing and publishing take their time even for a
    // stream copy).
    if (all_.cost > 0 && j.job.cost() > 0) {
      return std::max(j.job.cost() * all_.seconds / all_.cost, shortest_);
    }
    return std::nullopt;
  }

 private:
  static bool Encodes(const std::string& kind) {
    return kind == "encode" || kind == "chunk" || kind == "group" || kind == "rendition" ||
           kind == "renditions";
  }

  static std::string Key(const JobRecord& j) {
    return j.job.kind() + "/" + (j.job.outputs_size() > 0 ? j.job.outputs(0).preset() : "");
  }

  // Below this progress a running job's pace is mostly its start-up.
  static constexpr double kLiveProgress = 0.1;

  std::map<std::string, Sample> by_preset_;
  std::map<std::string, Sample> live_by_preset_;  // running jobs' projections
  std::map<std::string, Sample> by_kind_;
  Sample all_;
  double shortest_ = 0;  // seconds of the quickest job measured
};

// A slot of a worker: free from `at` seconds from now; `known` false when
// what runs on it before has no estimate.
using Slot = std::pair<double, bool>;

class Layout {
 public:
  Layout(const FarmState& farm, const SpeedModel& speed, SteadyTime now, const EtaOptions& options)
      : farm_(farm), speed_(speed), now_(now), options_(options) {}

  void Run(Eta* eta) {
    // Free slots, and slots that free when what runs there ends.
    for (const auto& [name, w] : farm_.workers()) {
      const bool usable = !w.lost && !w.quarantined && !w.draining;
      int busy = 0;
      for (const auto& jid : w.running) {
        const JobRecord* j = farm_.FindJob(jid);
        if (j == nullptr || j->state != JobState::kRunning) continue;
        ++busy;
        std::optional<double> left = Remaining(*j);
        finish_[jid] = left;
        if (usable) slots_.insert({left.value_or(0), left.has_value()});
      }
      if (usable) {
        for (int k = busy; k < w.slots; ++k) slots_.insert({0.0, true});
      }
    }
    // A running job of a worker no longer listed (or lost): on its own.
    std::vector<const JobRecord*> pending;
    for (const auto& [id, d] : farm_.deliveries()) {
      if (d.finished || d.cancelled) continue;
      for (const auto& jid : d.job_ids) {
        const JobRecord* j = farm_.FindJob(jid);
        if (j == nullptr) continue;
        if (j->state == JobState::kRunning && !finish_.count(jid)) finish_[jid] = Remaining(*j);
        if (j->state == JobState::kQueued || j->state == JobState::kWaiting) pending.push_back(j);
      }
    }
    // Dispatch order: priority, then submission.
    std::sort(pending.begin(), pending.end(), [](const JobRecord* a, const JobRecord* b) {
      if (a->priority != b->priority) return a->priority > b->priority;
      if (a->seq != b->seq) return a->seq < b->seq;
      return a->job.id() < b->job.id();
    });
    if (pending.size() > options_.max_jobs) pending.resize(options_.max_jobs);
    for (const JobRecord* j : pending) laid_out_.insert(j->job.id());
    for (const JobRecord* j : pending) Place(*j);

    for (const auto& [jid, left] : finish_) {
      if (left) eta->job_seconds[jid] = *left;
    }
    for (const auto& [id, d] : farm_.deliveries()) {
      if (d.finished || d.cancelled) continue;
      double last = 0;
      bool known = true;
      for (const auto& jid : d.job_ids) {
        const JobRecord* j = farm_.FindJob(jid);
        if (j == nullptr || IsTerminal(j->state)) continue;
        auto it = eta->job_seconds.find(jid);
        if (it == eta->job_seconds.end()) {
          known = false;
          break;
        }
        last = std::max(last, it->second);
      }
      if (known) eta->delivery_seconds[id] = last;
    }
  }

 private:
  std::optional<double> Remaining(const JobRecord& j) const {
    const double p = std::clamp(j.progress, 0.0, 1.0);
    const double elapsed = RunSeconds(j, now_);
    if (p >= options_.min_progress && elapsed > 0) return elapsed * (1 - p) / p;
    std::optional<double> whole = speed_.Duration(j);
    if (!whole) return std::nullopt;
    // Over its measured time with nothing to show: at least a second more.
    return std::max(*whole * (1 - p) - elapsed, 1.0);
  }

  // When `j` can start (seconds from now), or nothing when a job it waits
  // for has no estimate. Lays out the pending jobs it waits for first.
  std::optional<double> ReadyAt(const JobRecord& j) {
    double ready = 0;
    for (const auto& dep : j.job.depends_on()) {
      const JobRecord* d = farm_.FindJob(dep);
      // Gone or ended: nothing to wait for (a failed one fails `j` at once).
      if (d == nullptr || IsTerminal(d->state)) continue;
      if (!finish_.count(dep)) {
        if (!laid_out_.count(dep) || placing_.count(dep)) return std::nullopt;
        Place(*d);
      }
      const std::optional<double>& at = finish_[dep];
      if (!at) return std::nullopt;
      ready = std::max(ready, *at);
    }
    return ready;
  }

  void Place(const JobRecord& j) {
    const std::string& id = j.job.id();
    if (finish_.count(id)) return;
    placing_.insert(id);
    std::optional<double> ready = ReadyAt(j);
    placing_.erase(id);
    std::optional<double> took = speed_.Duration(j);
    // No worker connected now could run it (an encoder, a GPU slot): no
    // estimate of when one will.
    if (slots_.empty() || !ready || !farm_.Unrunnable(j).empty()) {
      finish_[id] = std::nullopt;
      return;
    }
    // The slot that frees last before the job can start (the earlier ones
    // stay for jobs behind it, as the dispatcher fills them), else the one
    // that frees first.
    auto it = slots_.upper_bound({*ready, true});
    if (it != slots_.begin()) {
      --it;
    } else {
      it = slots_.begin();
    }
    Slot slot = *it;
    slots_.erase(it);
    const double start = std::max(slot.first, *ready);
    const bool known = slot.second && took.has_value();
    const double end = start + took.value_or(0);
    finish_[id] = known ? std::optional<double>(end) : std::nullopt;
    slots_.insert({end, known});
  }

  const FarmState& farm_;
  const SpeedModel& speed_;
  const SteadyTime now_;
  const EtaOptions& options_;
  std::multiset<Slot> slots_;
  std::unordered_map<std::string, std::optional<double>> finish_;
  std::set<std::string> laid_out_;  // pending jobs within max_jobs
  std::set<std::string> placing_;   // guards against a dependency cycle
};

}  // namespace

Eta EstimateEta(const FarmState& farm, SteadyTime now, const EtaOptions& options) {
  SpeedModel speed;
  for (const auto& [id, d] : farm.deliveries()) {
    for (const auto& jid : d.job_ids) {
      const JobRecord* j = farm.FindJob(jid);
      if (j != nullptr && j->state == JobState::kSucceeded) speed.Learn(*j);
      if (j != nullptr && j->state == JobState::kRunning) speed.LearnRunning(*j, now);
    }
  }
  Eta eta;
  Layout(farm, speed, now, options).Run(&eta);
  return eta;
}

}  // namespace reelfarm
