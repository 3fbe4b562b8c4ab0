// platform.h for the rv32 build (rv32/Makefile) running as a Linux user program under
// qemu-riscv32: the ESP32-C3's instruction set, executing the firmware's own sources.
//   - The protocol runs on file descriptors 0/1 (`tinyface emulate --isa` hands qemu the
//     master side of a pseudo-terminal, as on the native build).
//   - tf_cycles() counts executed instructions: the QEMU plugin
//     (firmware/qemu/insn_count.c) answers a read of TF_RV32_COUNTER_FD with its exact
//     count. INFO sets TF_FLAG_INSTRUCTIONS and cpu_hz = the board's clock, so
//     cycles / cpu_hz is a lower bound on the chip's time (every instruction takes at least
//     one cycle; memory and flash waits add more). Without the plugin the counter is 0.
//   - tf_micros() is that count at the board's clock (emulated-chip time, deterministic);
//     the link's idle timeouts use the host clock.
//   - --profile: run one inference on TF_MODEL_INPUT_BYTES bytes read from stdin with a
//     TFLM profiler whose ticks are instructions, and print "index<TAB>op<TAB>instructions"
//     per operator, then "total<TAB>Invoke<TAB>instructions"; --profile --output also prints
//     the int8 output as "output<TAB>v0,v1,...".
// Storage: files in --storage DIR (written atomically); none given: memory only.
// benchmarks/xtensa_kernels.py compiles this file for an Xtensa LX106 too, with
// -DTF_RUNTIME_HEADER='"runtime_lx106.h"' (benchmarks/lx106/): that header supplies the
// syscall numbers, open flags and TF_PROGRAM_NAME.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "platform.h"
#ifdef TF_RUNTIME_HEADER
#include TF_RUNTIME_HEADER
#else
#include "runtime_rv32.h"
#endif
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/micro/micro_time.h"
#include "tinyface_app.h"
#include "tinyface_protocol.h"

// The descriptor the instruction-count plugin serves (its fd= argument; keep them equal).
#define TF_RV32_COUNTER_FD 987
#ifndef TF_PROGRAM_NAME
#define TF_PROGRAM_NAME "tinyface_rv32"
#endif

namespace {

struct Timespec64 {
  int64_t tv_sec;
  int64_t tv_nsec;
};
struct PollFd {
  int fd;
  short events;
  short revents;
};
constexpr short kPollIn = 0x1;
constexpr short kPollOut = 0x4;
constexpr long kOpenRead = 0x0, kOpenWriteCreateTrunc = TF_O_WRONLY | TF_O_CREAT | TF_O_TRUNC;

int g_in_fd = 0;
int g_out_fd = 1;
const char* g_storage_dir = nullptr;
uint32_t g_baud = 0;
bool g_once = false;
bool g_print_output = false;  // --output: --profile also prints the int8 output
bool g_connected = false;
bool g_counter = true;  // false once a read of the counter failed (no plugin)
int64_t g_rx_wire_ns = 0, g_tx_wire_ns = 0;
alignas(16) uint8_t g_arena[TF_ARENA_BYTES];

long Sys(long n, long a0 = 0, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0) {
  return tf_rv32_syscall(n, a0, a1, a2, a3, a4);
}

int64_t HostNs() {
  Timespec64 ts = {0, 0};
  Sys(TF_SYS_CLOCK_GETTIME64, 1 /* CLOCK_MONOTONIC */, (long)&ts);
  return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

void SleepNs(int64_t ns) {
  if (ns <= 0) return;
  Timespec64 ts = {ns / 1000000000ll, ns % 1000000000ll};
  Sys(TF_SYS_CLOCK_NANOSLEEP64, 1, 0, (long)&ts, 0);
}

uint64_t Instructions() {
  uint64_t count = 0;
  if (g_counter && Sys(TF_SYS_READ, TF_RV32_COUNTER_FD, (long)&count, sizeof(count)) != (long)sizeof(count)) {
    g_counter = false;
    count = 0;
  }
  return count;
}

// UART pacing: n bytes take n * TF_UART_BITS_PER_BYTE / baud seconds (8N1); wait until `*wire_ns` catches up.
void Pace(int64_t* wire_ns, size_t n) {
  if (g_baud == 0) return;
  const int64_t now = HostNs();
  *wire_ns = (*wire_ns > now ? *wire_ns : now) + (int64_t)n * TF_UART_BITS_PER_BYTE * 1000000000ll / g_baud;
  SleepNs(*wire_ns - now);
}

int Poll(int fd, short events, int timeout_ms) {
  PollFd pfd = {fd, events, 0};
  Timespec64 ts = {timeout_ms / 1000, (int64_t)(timeout_ms % 1000) * 1000000ll};
  return (int)Sys(TF_SYS_PPOLL64, (long)&pfd, 1, (long)&ts, 0, 8);
}

void StoragePath(char* out, size_t size, const char* key, const char* suffix) {
  snprintf(out, size, "%s/%s.bin%s", g_storage_dir, key, suffix);
}

}  // namespace

extern "C" int tf_platform_init(uint32_t baud) {
  (void)baud;  // a pty has no baud rate; --baud paces the link here instead
  return 0;
}

extern "C" int tf_serial_read(uint8_t* buf, size_t max_bytes, uint32_t timeout_ms) {
  const int ready = Poll(g_in_fd, kPollIn, (int)timeout_ms);
  if (ready < 0) return ready == -TF_EINTR ? 0 : TF_SERIAL_GONE;
  if (ready == 0) return 0;
  const long n = Sys(TF_SYS_READ, g_in_fd, (long)buf, (long)(g_baud && max_bytes > 64 ? 64 : max_bytes));
  if (n > 0) {
    g_connected = true;
    Pace(&g_rx_wire_ns, (size_t)n);
    return (int)n;
  }
  if (n == 0) return TF_SERIAL_GONE;  // a pipe's writer closed
  if (n == -TF_EIO) {                 // a pty master with no host on the slave side
    if (g_connected) {
      g_connected = false;
      return g_once ? TF_SERIAL_GONE : TF_SERIAL_HANGUP;
    }
    SleepNs((timeout_ms < 20 ? timeout_ms : 20) * 1000000ll);
    return 0;
  }
  return (n == -TF_EINTR || n == -TF_EAGAIN) ? 0 : TF_SERIAL_GONE;
}

extern "C" int tf_serial_write(const uint8_t* buf, size_t n) {
  Pace(&g_tx_wire_ns, n);
  while (n > 0) {
    const long sent = Sys(TF_SYS_WRITE, g_out_fd, (long)buf, (long)n);
    if (sent < 0) {
      if (sent == -TF_EINTR) continue;
      if (sent == -TF_EAGAIN) {
        if (Poll(g_out_fd, kPollOut, 1000) <= 0) return 1;  // nobody reads: drop the reply
        continue;
      }
      return 1;
    }
    buf += sent;
    n -= (size_t)sent;
  }
  return 0;
}

extern "C" uint32_t tf_cycles(void) { return (uint32_t)Instructions(); }

extern "C" uint32_t tf_cpu_hz(void) { return (uint32_t)TF_BOARD_CPU_MHZ * 1000000u; }

extern "C" uint64_t tf_micros(void) { return Instructions() / (uint64_t)TF_BOARD_CPU_MHZ; }

extern "C" uint32_t tf_reset_reason(void) { return TF_RESET_UNKNOWN; }  // not a chip

extern "C" uint32_t tf_free_heap_bytes(void) { return 0; }
extern "C" uint32_t tf_free_psram_bytes(void) { return 0; }

extern "C" void* tf_arena_alloc(size_t bytes, int in_psram) {
  (void)in_psram;
  return bytes <= sizeof(g_arena) ? g_arena : nullptr;
}

extern "C" int tf_storage_load(const char* key, void* buf, size_t size) {
  if (g_storage_dir == nullptr) return -1;
  char path[512];
  StoragePath(path, sizeof(path), key, "");
  const long fd = Sys(TF_SYS_OPENAT, TF_AT_FDCWD, (long)path, kOpenRead);
  if (fd < 0) return -1;
  // The blob's size: read it all, keeping the first `size` bytes.
  size_t total = 0;
  uint8_t chunk[256];
  for (;;) {
    const long n = Sys(TF_SYS_READ, fd, (long)chunk, sizeof(chunk));
    if (n <= 0) break;
    if (total < size) memcpy((uint8_t*)buf + total, chunk, (size_t)n < size - total ? (size_t)n : size - total);
    total += (size_t)n;
  }
  Sys(TF_SYS_CLOSE, fd);
  return (int)total;
}

extern "C" int tf_storage_save(const char* key, const void* buf, size_t size) {
  if (g_storage_dir == nullptr) return 0;  // memory only
  char path[512], tmp[512];
  StoragePath(path, sizeof(path), key, "");
  StoragePath(tmp, sizeof(tmp), key, ".tmp");
  const long fd = Sys(TF_SYS_OPENAT, TF_AT_FDCWD, (long)tmp, kOpenWriteCreateTrunc, 0644);
  if (fd < 0) return 1;
  bool ok = Sys(TF_SYS_WRITE, fd, (long)buf, (long)size) == (long)size && Sys(TF_SYS_FSYNC, fd) == 0;
  Sys(TF_SYS_CLOSE, fd);
  if (!ok || Sys(TF_SYS_RENAMEAT2, TF_AT_FDCWD, (long)tmp, TF_AT_FDCWD, (long)path, 0) != 0) {
    Sys(TF_SYS_UNLINKAT, TF_AT_FDCWD, (long)tmp, 0);
    return 2;
  }
  return 0;
}

// TF_FLAG_INSTRUCTIONS only while the counter answers (qemu without the plugin: no flag, cycles 0).
extern "C" uint32_t tf_platform_flags(void) {
  Instructions();
  return g_counter ? TF_FLAG_INSTRUCTIONS : 0;
}

// TFLM's clock (its profiler): ticks are instructions.
namespace tflite {
uint32_t ticks_per_second() { return (uint32_t)TF_BOARD_CPU_MHZ * 1000000u; }
uint32_t GetCurrentTimeTicks() { return (uint32_t)Instructions(); }
}  // namespace tflite

// TFLM never allocates; a call here is a bug, so it stops the program loudly.
void* operator new(size_t) { abort(); }
void* operator new[](size_t) { abort(); }
void operator delete(void*) noexcept { abort(); }
void operator delete[](void*) noexcept { abort(); }
void operator delete(void*, size_t) noexcept { abort(); }
void operator delete[](void*, size_t) noexcept { abort(); }
extern "C" void __cxa_pure_virtual() { abort(); }
extern "C" int __cxa_atexit(void (*)(void*), void*, void*) { return 0; }  // statics never die
void* __dso_handle = nullptr;

namespace {

// A TFLM profiler recording each operator's instructions (ticks = instructions).
class InstructionProfiler : public tflite::MicroProfilerInterface {
 public:
  static constexpr int kMaxEvents = 1024;
  uint32_t BeginEvent(const char* tag) override {
    if (count_ >= kMaxEvents) return kMaxEvents;
    tags_[count_] = tag;
    start_[count_] = GetInstructions();
    return (uint32_t)count_++;
  }
  void EndEvent(uint32_t handle) override {
    if (handle < (uint32_t)kMaxEvents) end_[handle] = GetInstructions();
  }
  int count() const { return count_; }
  const char* tag(int i) const { return tags_[i]; }
  uint64_t instructions(int i) const { return end_[i] - start_[i]; }

 private:
  static uint64_t GetInstructions() { return Instructions(); }
  const char* tags_[kMaxEvents];
  uint64_t start_[kMaxEvents];
  uint64_t end_[kMaxEvents];
  int count_ = 0;
};

InstructionProfiler g_profiler;
TfOpResolver g_profile_resolver;
alignas(tflite::MicroInterpreter) uint8_t g_profile_interpreter[sizeof(tflite::MicroInterpreter)];

// "output<TAB>v0,v1,...": out of line, so that ProfileMain's code around Invoke() (its
// measured window) compiles as it does without --output.
__attribute__((noinline)) void PrintOutput(const TfLiteTensor* out) {
  char line[16];
  Sys(TF_SYS_WRITE, 1, (long)"output\t", 7);
  for (size_t i = 0; i < out->bytes; i++) {
    const int n = snprintf(line, sizeof(line), i + 1 < out->bytes ? "%d," : "%d\n", (int)out->data.int8[i]);
    Sys(TF_SYS_WRITE, 1, (long)line, n);
  }
}

int ProfileMain() {
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (tf_register_ops(g_profile_resolver) != kTfLiteOk) return 2;
  auto* interpreter = new (g_profile_interpreter)
      tflite::MicroInterpreter(model, g_profile_resolver, g_arena, TF_ARENA_BYTES, nullptr, &g_profiler);
  if (interpreter->AllocateTensors() != kTfLiteOk) return 4;
  uint8_t* input = (uint8_t*)interpreter->input(0)->data.int8;
  size_t have = 0;
  while (have < TF_MODEL_INPUT_BYTES) {
    const long n = Sys(TF_SYS_READ, 0, (long)(input + have), (long)(TF_MODEL_INPUT_BYTES - have));
    if (n <= 0) return 5;
    have += (size_t)n;
  }
  const uint64_t before = Instructions();
  if (interpreter->Invoke() != kTfLiteOk) return 6;
  const uint64_t total = Instructions() - before;
  char line[160];
  for (int i = 0; i < g_profiler.count(); i++) {
    const int len = snprintf(line, sizeof(line), "%d\t%s\t%llu\n", i, g_profiler.tag(i),
                             (unsigned long long)g_profiler.instructions(i));
    Sys(TF_SYS_WRITE, 1, (long)line, len);
  }
  const int len = snprintf(line, sizeof(line), "total\tInvoke\t%llu\n", (unsigned long long)total);
  Sys(TF_SYS_WRITE, 1, (long)line, len);
  if (g_print_output) PrintOutput(interpreter->output(0));
  return g_counter ? 0 : 7;
}

}  // namespace

int main(int argc, char** argv) {
  Sys(TF_SYS_PRCTL, 1 /* PR_SET_PDEATHSIG */, 15 /* SIGTERM */);  // never outlive our parent
  // The kernel's struct sigaction is {handler, flags, mask} on riscv32 (no sa_restorer) and
  // {handler, flags, restorer, mask} on xtensa: with zeros past the handler, either reads
  // SIG_IGN, no flags and an empty mask (riscv32 leaves the last word unread).
  struct {
    long handler, flags, restorer, mask[2];
  } ignore = {1 /* SIG_IGN */, 0, 0, {0, 0}};
  Sys(TF_SYS_RT_SIGACTION, 13 /* SIGPIPE */, (long)&ignore, 0, 8);
  bool profile = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc) {
      g_storage_dir = argv[++i];
    } else if (strcmp(argv[i], "--baud") == 0 && i + 1 < argc) {
      g_baud = (uint32_t)strtoul(argv[++i], nullptr, 10);
    } else if (strcmp(argv[i], "--once") == 0) {
      g_once = true;
    } else if (strcmp(argv[i], "--profile") == 0) {
      profile = true;
    } else if (strcmp(argv[i], "--output") == 0) {
      g_print_output = true;
    } else {
      fprintf(stderr, "usage: %s [--storage DIR] [--baud N] [--once] [--profile [--output]]\n", argv[0]);
      return 2;
    }
  }
  if (g_print_output && !profile) {
    fprintf(stderr, "%s: --output prints the output of --profile's inference; add --profile\n", argv[0]);
    return 2;
  }
  if (profile) return ProfileMain();
  const int status = tf_app_main();
  if (status != 0) fprintf(stderr, TF_PROGRAM_NAME ": model setup failed (status %d)\n", status);
  return status;
}
