// platform.h on a POSIX host, for the native build (native/Makefile): the same protocol,
// gallery and inference sources, linked against TFLM's reference kernels, serving the
// protocol on
//   - file descriptors 0/1 (default): `tinyface emulate --native` hands it the master side
//     of a pseudo-terminal (or tests a pipe), or
//   - a pseudo-terminal of its own (--pty): prints "PORT /dev/pts/N" on stdout, then serves.
// Cycles are nanoseconds of CLOCK_MONOTONIC (tf_cpu_hz() = 1e9), flagged TF_FLAG_NATIVE.
// Storage: files in --storage DIR (or $TINYFACE_NVS_DIR), written atomically; none given:
// the gallery lives in memory only.
// --baud N paces each direction to N/10 bytes per second like a UART (0: as fast as the
// pty); --once exits when the first host session on the pty ends.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <string>

#include "platform.h"
#include "tinyface_app.h"
#include "tinyface_protocol.h"

namespace {

int g_in_fd = 0;
int g_out_fd = 1;
std::string g_storage_dir;
uint32_t g_baud = 0;          // 0: unthrottled
bool g_once = false;
bool g_connected = false;     // a host has the pty open (bytes arrived since the last hangup)
double g_rx_wire_s = 0.0;     // when the bytes received so far finished arriving on the "wire"
double g_tx_wire_s = 0.0;

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void SleepMs(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

// UART pacing: n bytes take n * TF_UART_BITS_PER_BYTE / baud seconds (8N1); wait until `*wire_s` catches up.
void Pace(double* wire_s, size_t n) {
  if (g_baud == 0) return;
  const double now = (double)NowNs() / 1e9;
  *wire_s = (*wire_s > now ? *wire_s : now) + (double)n * TF_UART_BITS_PER_BYTE / (double)g_baud;
  const double wait_s = *wire_s - now;
  if (wait_s > 0) {
    struct timespec ts = {(time_t)wait_s, (long)((wait_s - (double)(time_t)wait_s) * 1e9)};
    nanosleep(&ts, nullptr);
  }
}

int OpenOwnPty() {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) return -1;
  const char* path = ptsname(master);
  if (path == nullptr) return -1;
  // Raw mode on the slave (where the line discipline lives) so no echo or CR/LF mapping
  // touches the binary frames; then close it again: the host opens the path, and its
  // closing it shows up here as EIO (a session ended), as on the emulator's pty.
  int slave = open(path, O_RDWR | O_NOCTTY);
  if (slave < 0) return -1;
  struct termios tio;
  if (tcgetattr(slave, &tio) == 0) {
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
  }
  close(slave);
  printf("PORT %s\n", path);
  fflush(stdout);
  return master;
}

}  // namespace

extern "C" int tf_platform_init(uint32_t baud) {
  (void)baud;  // a pty or pipe has no baud rate; `tinyface emulate --baud` throttles outside
  return 0;
}

extern "C" int tf_serial_read(uint8_t* buf, size_t max_bytes, uint32_t timeout_ms) {
  struct pollfd pfd = {g_in_fd, POLLIN, 0};
  const int ready = poll(&pfd, 1, (int)timeout_ms);
  if (ready < 0) return errno == EINTR ? 0 : TF_SERIAL_GONE;
  if (ready == 0) return 0;
  // Paced like a UART: at most 64 bytes per wire slice when throttled.
  const ssize_t n = read(g_in_fd, buf, g_baud && max_bytes > 64 ? 64 : max_bytes);
  if (n > 0) {
    g_connected = true;
    Pace(&g_rx_wire_s, (size_t)n);
    return (int)n;
  }
  if (n == 0) return TF_SERIAL_GONE;  // a pipe's writer closed: the link is gone
  if (errno == EIO) {  // a pty master with no host on the slave side
    if (g_connected) {
      g_connected = false;
      return g_once ? TF_SERIAL_GONE : TF_SERIAL_HANGUP;
    }
    SleepMs(timeout_ms < 20 ? (int)timeout_ms : 20);  // wait for a host without spinning
    return 0;
  }
  return (errno == EINTR || errno == EAGAIN) ? 0 : TF_SERIAL_GONE;
}

extern "C" int tf_serial_write(const uint8_t* buf, size_t n) {
  Pace(&g_tx_wire_s, n);
  while (n > 0) {
    const ssize_t sent = write(g_out_fd, buf, n);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {g_out_fd, POLLOUT, 0};
        if (poll(&pfd, 1, 1000) <= 0) return 1;  // nobody reads: drop the reply
        continue;
      }
      return 1;
    }
    buf += sent;
    n -= (size_t)sent;
  }
  return 0;
}

extern "C" uint32_t tf_cycles(void) { return (uint32_t)NowNs(); }

extern "C" uint32_t tf_cpu_hz(void) { return 1000000000u; }

extern "C" uint64_t tf_micros(void) { return NowNs() / 1000u; }

extern "C" uint32_t tf_reset_reason(void) { return TF_RESET_UNKNOWN; }  // not a chip

extern "C" uint32_t tf_free_heap_bytes(void) { return 0; }

extern "C" uint32_t tf_free_psram_bytes(void) { return 0; }

extern "C" void* tf_arena_alloc(size_t bytes, int in_psram) {
  (void)in_psram;
  void* p = nullptr;
  return posix_memalign(&p, 16, bytes) == 0 ? p : nullptr;
}

extern "C" int tf_storage_load(const char* key, void* buf, size_t size) {
  if (g_storage_dir.empty()) return -1;
  const std::string path = g_storage_dir + "/" + key + ".bin";
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return -1;
  fseek(f, 0, SEEK_END);
  const long stored = ftell(f);
  fseek(f, 0, SEEK_SET);
  int result = (int)stored;
  if (stored == (long)size && fread(buf, 1, size, f) != size) result = -1;
  fclose(f);
  return result;
}

extern "C" int tf_storage_save(const char* key, const void* buf, size_t size) {
  if (g_storage_dir.empty()) return 0;  // memory only
  const std::string path = g_storage_dir + "/" + key + ".bin";
  // a temporary name of this process's own: two programs saving into one folder (which `tinyface
  // emulate` refuses, but a program started by hand may not) never write the same file
  const std::string tmp = path + ".tmp." + std::to_string((long)getpid());
  FILE* f = fopen(tmp.c_str(), "wb");
  if (f == nullptr) return 1;
  const bool ok = fwrite(buf, 1, size, f) == size && fflush(f) == 0 && fsync(fileno(f)) == 0;
  fclose(f);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return 2;
  }
  return 0;
}

extern "C" uint32_t tf_platform_flags(void) { return TF_FLAG_NATIVE; }

int main(int argc, char** argv) {
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the process that started us
#endif
  signal(SIGPIPE, SIG_IGN);
  bool own_pty = false;
  const char* env_dir = getenv("TINYFACE_NVS_DIR");
  if (env_dir != nullptr) g_storage_dir = env_dir;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--pty") == 0) {
      own_pty = true;
    } else if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc) {
      g_storage_dir = argv[++i];
    } else if (strcmp(argv[i], "--baud") == 0 && i + 1 < argc) {
      g_baud = (uint32_t)strtoul(argv[++i], nullptr, 10);
    } else if (strcmp(argv[i], "--once") == 0) {
      g_once = true;
    } else {
      fprintf(stderr, "usage: %s [--pty] [--storage DIR] [--baud N] [--once]\n", argv[0]);
      return 2;
    }
  }
  if (own_pty) {
    const int master = OpenOwnPty();
    if (master < 0) {
      fprintf(stderr, "tinyface_native: cannot open a pseudo-terminal: %s\n", strerror(errno));
      return 1;
    }
    g_in_fd = g_out_fd = master;
  }
  const int status = tf_app_main();
  if (status != 0) fprintf(stderr, "tinyface_native: model setup failed (status %d)\n", status);
  return status;
}
