// PosixProcessRunner: fork/exec from an argument vector.
//
// Between fork() and exec() the child of a multithreaded process may only make
// async-signal-safe calls, so everything that allocates (the char* argv, the
// resolved program path, /dev/null) is prepared before fork(). Every
// descriptor the parent creates is O_CLOEXEC so that a concurrent fork() on
// another thread never inherits our pipe ends (which would keep them open and
// delay EOF); the child closes everything above stderr before exec anyway.
//
// Exec failures travel back over a CLOEXEC "exec pipe": the child writes its
// errno and exits 127; a successful exec closes the pipe, so the parent reads
// EOF. That is how "program not found" is told apart from "program ran and
// exited 127".
//
// The child gets its own process group (pgid = pid). Timeouts and cancels send
// SIGKILL to the whole group, so helpers a child started die with it. When
// the child exits, survivors left in its group are killed too (the group is
// still pinned by the unreaped zombie, so its id cannot have been reused).
#include "common/process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace reelfarm {
namespace {

constexpr int kTickMs = 50;
// After the child has exited, how long to keep draining pipes that a process
// outside its group may still hold open.
constexpr auto kDrainGrace = std::chrono::seconds(2);
// Collected stdout (when no line callback) is capped; beyond it data is dropped.
constexpr size_t kMaxStdoutBytes = 64u << 20;

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

std::string ErrnoText(int err) { return std::strerror(err); }

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Resolves argv[0] like execvp would (PATH search when it has no '/'), in the
// parent, so the child only needs execv. Returns "" when nothing is found.
std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (IsExecutableFile(candidate)) return candidate;
    start = end + 1;
  }
  return "";
}

[[noreturn]] void ChildFail(int exec_pipe, int err) {
  ssize_t ignored = ::write(exec_pipe, &err, sizeof(err));
  (void)ignored;
  ::_exit(127);
}

// Everything the child needs, prepared before fork().
struct ChildPlan {
  const char* program;
  char* const* argv;
  char* const* envp;
  pid_t parent;
  int devnull;
  int out_w;
  int err_w;
  int exec_w;
  uint64_t memory_limit_bytes;
  int max_fd;
  const char* cgroup_procs;  // nullptr = none
};

// Writes this process's pid to a cgroup.procs file. Async-signal-safe.
bool JoinCgroup(const char* procs_file) {
  int fd = ::open(procs_file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char digits[24];
  int n = 0;
  for (pid_t pid = ::getpid(); pid > 0 && n < 23; pid /= 10) digits[n++] = char('0' + pid % 10);
  char text[24];
  for (int i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
  bool ok = ::write(fd, text, n) == n;
  ::close(fd);
  return ok;
}

// Runs in the forked child. Async-signal-safe calls only.
[[noreturn]] void ChildMain(const ChildPlan& p) {
  ::setpgid(0, 0);
  // Die with the parent. PDEATHSIG fires when the forking *thread* exits;
  // Run() blocks that thread until the child is reaped, so that is the same.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(p.exec_w, errno);
  // The parent may have died before prctl took effect.
  if (::getppid() != p.parent) ::_exit(127);

  // Undo what the parent's signal handling would leak through exec: blocked
  // signals stay blocked and ignored ones (SIGPIPE) stay ignored.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // fails harmlessly for reserved signals
  }

  // First copy our four descriptors above 3 (F_DUPFD never clobbers an open
  // one), so that placing them on 0..3 cannot overwrite a source not yet
  // placed. The exec pipe ends up on fd 3, still CLOEXEC.
  const int devnull = ::fcntl(p.devnull, F_DUPFD_CLOEXEC, 4);
  const int out_w = ::fcntl(p.out_w, F_DUPFD_CLOEXEC, 4);
  const int err_w = ::fcntl(p.err_w, F_DUPFD_CLOEXEC, 4);
  const int exec_w = ::fcntl(p.exec_w, F_DUPFD_CLOEXEC, 4);
  if (devnull < 0 || out_w < 0 || err_w < 0 || exec_w < 0) ChildFail(p.exec_w, errno);
  if (::dup3(exec_w, 3, O_CLOEXEC) != 3) ChildFail(exec_w, errno);
  const int exec_fd = 3;
  if (::dup2(devnull, 0) != 0 || ::dup2(out_w, 1) != 1 || ::dup2(err_w, 2) != 2) {
    ChildFail(exec_fd, errno);
  }
  if (::close_range(4, ~0u, 0) != 0) {
    for (int fd = 4; fd <= p.max_fd; ++fd) ::close(fd);
  }

  if (p.cgroup_procs != nullptr && !JoinCgroup(p.cgroup_procs)) ChildFail(exec_fd, errno);
  if (p.memory_limit_bytes > 0) {
    struct rlimit lim;
    lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(p.memory_limit_bytes);
    if (::setrlimit(RLIMIT_AS, &lim) != 0) ChildFail(exec_fd, errno);
  }

  ::execve(p.program, p.argv, p.envp);
  ChildFail(exec_fd, errno);
}

void AppendTail(std::string* tail, const char* data, size_t n, size_t limit) {
  if (limit == 0) return;
  tail->append(data, n);
  // Trim lazily (at 2x) so long streams stay O(n).
  if (tail->size() > 2 * limit) tail->erase(0, tail->size() - limit);
}

// Splits a byte stream into lines for a callback; what follows the last
// '\n' waits for more data (or Finish).
class LineSplitter {
 public:
  explicit LineSplitter(const std::function<void(std::string_view)>* fn) : fn_(fn) {}
  void Feed(const char* data, size_t len) {
    if (*fn_ == nullptr) return;
    buf_.append(data, len);
    size_t pos = 0;
    for (size_t nl; (nl = buf_.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      (*fn_)(std::string_view(buf_).substr(pos, nl - pos));
    }
    buf_.erase(0, pos);
  }
  void Finish() {
    if (*fn_ != nullptr && !buf_.empty()) (*fn_)(buf_);
    buf_.clear();
  }

 private:
  const std::function<void(std::string_view)>* fn_;
  std::string buf_;
};

bool SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace

std::string ProcessResult::Describe() const {
  std::string s;
  if (term_signal != 0) {
    const char* name = sigdescr_np(term_signal);
    s = "killed by signal " + std::to_string(term_signal);
    if (name != nullptr) s += std::string(" (") + name + ")";
  } else {
    s = "exit code " + std::to_string(exit_code);
  }
  if (timed_out) return "timed out (" + s + ")";
  if (cancelled) return "cancelled (" + s + ")";
  return s;
}

StatusOr<ProcessResult> PosixProcessRunner::Run(const ProcessOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return Status::InvalidArgument("cannot run a process without a program name");
  }
  const std::string& name = options.argv[0];
  std::string program = ResolveProgram(name);
  if (program.empty()) {
    return Status::NotFound("cannot run " + name + ": No such file or directory");
  }

  // All allocation happens here, before fork().
  std::vector<char*> argv;
  argv.reserve(options.argv.size() + 1);
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The caller's environment with options.env's entries replacing theirs.
  std::vector<char*> envp;
  auto overridden = [&](const char* entry) {
    for (const std::string& e : options.env) {
      size_t eq = e.find('=');
      if (eq != std::string::npos && std::strncmp(entry, e.c_str(), eq + 1) == 0) return true;
    }
    return false;
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!overridden(*e)) envp.push_back(*e);
  }
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull.get() < 0) return Status::IOError("cannot open /dev/null: " + ErrnoText(errno));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Status::IOError("pipe: " + ErrnoText(errno));
  Fd out_r(p[0]), out_w(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) return Status::IOError("pipe: " + ErrnoText(errno));
  Fd err_r(p[0]), err_w(p[1]);
  if (::pipe2(p, O_CLOEXEC) != 0) return Status::IOError("pipe: " + ErrnoText(errno));
  Fd exec_r(p[0]), exec_w(p[1]);

  struct rlimit nofile;
  int max_fd = 65535;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
  }
  ChildPlan plan{program.c_str(),
                 argv.data(),
                 envp.data(),
                 ::getpid(),
                 devnull.get(),
                 out_w.get(),
                 err_w.get(),
                 exec_w.get(),
                 options.memory_limit_bytes,
                 max_fd,
                 options.cgroup_procs_file.empty() ? nullptr : options.cgroup_procs_file.c_str()};

  const auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) return Status::IOError("cannot run " + name + ": fork: " + ErrnoText(errno));
  if (pid == 0) ChildMain(plan);

  // Also set the group from here, so a kill(-pid) can never miss it.
  ::setpgid(pid, pid);
  devnull.Reset();
  out_w.Reset();
  err_w.Reset();
  exec_w.Reset();

  // EOF on the exec pipe means exec succeeded; an int means it failed.
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_r.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    int wstatus;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    std::string msg = "cannot run " + name + ": " + ErrnoText(child_errno);
    if (child_errno == ENOENT) return Status::NotFound(msg);
    return Status::IOError(msg);
  }
  exec_r.Reset();

  SetNonBlocking(out_r.get());
  SetNonBlocking(err_r.get());

  ProcessResult result;
  LineSplitter stdout_lines(&options.on_stdout_line);
  LineSplitter stderr_lines(&options.on_stderr_line);
  std::string stderr_buf;
  bool killed = false;
  bool exited = false;
  std::chrono::steady_clock::time_point exited_at;
  const bool has_deadline = options.timeout_s > 0;
  const auto deadline =
      start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                  std::chrono::duration<double>(has_deadline ? options.timeout_s : 0));

  auto handle_stdout = [&](const char* data, size_t len) {
    if (!options.on_stdout_line) {
      size_t room = kMaxStdoutBytes - std::min(kMaxStdoutBytes, result.stdout_data.size());
      result.stdout_data.append(data, std::min(len, room));
      return;
    }
    stdout_lines.Feed(data, len);
  };

  auto kill_group = [&]() { ::kill(-pid, SIGKILL); };

  char buf[65536];
  // Runs until the child has exited and both pipes are at EOF (or the drain
  // grace ran out). With no pipe left open, poll() is just the 50 ms tick.
  while (!exited || out_r.get() >= 0 || err_r.get() >= 0) {
    struct pollfd fds[2];
    int nfds = 0;
    int out_idx = -1;
    if (out_r.get() >= 0) {
      out_idx = nfds;
      fds[nfds++] = {out_r.get(), POLLIN, 0};
    }
    if (err_r.get() >= 0) {
      fds[nfds++] = {err_r.get(), POLLIN, 0};
    }
    // With both pipes at EOF the child is exiting: look again sooner.
    int pr = ::poll(fds, nfds, nfds > 0 ? kTickMs : 2);
    if (pr < 0 && errno != EINTR) break;
    if (pr > 0) {
      for (int i = 0; i < nfds; ++i) {
        if (fds[i].revents == 0) continue;
        Fd& fd = (i == out_idx) ? out_r : err_r;
        // Read what is there now; EOF or error closes the pipe.
        for (;;) {
          ssize_t r = ::read(fd.get(), buf, sizeof(buf));
          if (r > 0) {
            if (i == out_idx) {
              handle_stdout(buf, static_cast<size_t>(r));
            } else {
              AppendTail(&stderr_buf, buf, static_cast<size_t>(r), options.stderr_tail_bytes);
              stderr_lines.Feed(buf, static_cast<size_t>(r));
            }
            if (static_cast<size_t>(r) < sizeof(buf)) break;
            continue;
          }
          if (r < 0 && errno == EINTR) continue;
          if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          fd.Reset();  // EOF or a real error
          break;
        }
      }
    }

    const auto now = std::chrono::steady_clock::now();
    if (!killed && !exited) {
      if (options.cancel != nullptr && options.cancel->load()) {
        result.cancelled = true;
        killed = true;
        kill_group();
      } else if (has_deadline && now >= deadline) {
        result.timed_out = true;
        killed = true;
        kill_group();
      }
    }
    if (!exited) {
      // Look without reaping: the zombie keeps the group id reserved.
      siginfo_t info;
      std::memset(&info, 0, sizeof(info));
      if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
        exited = true;
        exited_at = now;
        kill_group();  // stragglers in the child's group
      }
    } else if (now - exited_at > kDrainGrace) {
      break;  // someone outside the group holds a pipe; stop waiting for EOF
    }
  }

  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return Status::Internal("waitpid: " + ErrnoText(errno));
  }
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.term_signal = WTERMSIG(wstatus);
  }
  stdout_lines.Finish();
  stderr_lines.Finish();
  if (stderr_buf.size() > options.stderr_tail_bytes) {
    stderr_buf.erase(0, stderr_buf.size() - options.stderr_tail_bytes);
  }
  result.stderr_tail = std::move(stderr_buf);
  return result;
}

}  // namespace reelfarm
