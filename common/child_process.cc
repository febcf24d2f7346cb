#include "common/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace reelfarm {

std::string ErrnoText(int err) {
  char buf[256];
  return std::string(strerror_r(err, buf, sizeof buf));
}

std::string DescribeWaitStatus(int ws) {
  if (WIFEXITED(ws)) return "exit code " + std::to_string(WEXITSTATUS(ws));
  if (WIFSIGNALED(ws)) {
    int sig = WTERMSIG(ws);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "ended (status " + std::to_string(ws) + ")";
}

StatusOr<pid_t> SpawnLogged(const std::string& name, const std::vector<std::string>& argv,
                            const std::string& log_path) {
  if (argv.empty()) return Status::InvalidArgument("empty argv for " + name);
  // Everything the child needs is prepared before fork: after it only
  // async-signal-safe calls are made.
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Status::IOError("cannot create " + log_path + ": " + ErrnoText(errno));
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    close(log_fd);
    return Status::IOError("cannot open /dev/null: " + ErrnoText(errno));
  }
  // Reports an exec failure (errno) to the parent; closed by a successful exec.
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(log_fd);
    close(null_fd);
    return Status::IOError("pipe: " + ErrnoText(errno));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(log_fd);
    close(null_fd);
    close(err_pipe[0]);
    close(err_pipe[1]);
    return Status::IOError("fork: " + ErrnoText(err));
  }
  if (pid == 0) {
    // Own process group: a Ctrl-C at the terminal reaches only the parent,
    // which then stops its children in order.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execvp(cargv[0], cargv.data());
    int err = errno;
    ssize_t ignored = write(err_pipe[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int ws = 0;
    waitpid(pid, &ws, 0);
    return Status::Unavailable("cannot start " + name + " (" + argv[0] +
                               "): " + ErrnoText(child_errno));
  }
  return pid;
}

}  // namespace reelfarm
