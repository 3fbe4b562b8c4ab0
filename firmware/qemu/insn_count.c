/*
 * A QEMU TCG plugin that counts the guest instructions executed, exactly, and lets the
 * guest read the count (tinyface: the rv32 firmware build under qemu-riscv32).
 *
 * Counting: every translated block adds its instruction count to one 64-bit counter
 * when it starts executing (an inline add, no helper call). A RISC-V block ends at every
 * branch, jump and ecall, so at a syscall the counter includes every instruction before
 * it and the ecall itself. (User mode, one vCPU: no locking.)
 *
 * Reading: qemu-user passes a guest read() straight to the host file descriptor. The
 * plugin makes a pipe and puts its read end at a fixed descriptor (fd=N, default 987);
 * just before a guest read() on that descriptor runs, the syscall callback writes the
 * current count into the pipe, so the guest's 8-byte read returns it. Reading it costs
 * the guest a few instructions (the syscall wrapper), which are counted like any others.
 * At exit, the total is printed on stderr with total=on. read=N names the guest's read
 * syscall number (default 63, the Linux generic table of riscv32/riscv64; xtensa's is 12).
 *
 * Debian ships no qemu-plugin.h, so the version-1 plugin API this uses (QEMU 4.2 to 8.x)
 * is declared here by hand.
 *
 * Build: gcc -shared -fPIC -O2 -o insn_count.so insn_count.c
 * Use:   qemu-riscv32 -plugin ./insn_count.so,fd=987 program
 *        qemu-xtensa -cpu lx106 -plugin ./insn_count.so,fd=987,read=12 program
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the QEMU plugin API, version 1 (include/qemu/qemu-plugin.h) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct {
  const char *target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus;
      int max_vcpus;
    } system;
  };
} qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                                              uint64_t a6, uint64_t a7, uint64_t a8);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                                     uint64_t imm);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
/* ---- end of the API ---- */

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insn_count;
static int64_t sys_read = 63; /* the guest's read syscall: the Linux generic table (riscv32/riscv64) */
static int counter_fd = 987;
static int pipe_write_fd = -1;
static bool print_total = false;

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count, qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
  (void)id, (void)vcpu_index, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
  if (num != sys_read || (int64_t)(int32_t)a1 != counter_fd) return;
  const uint64_t now = insn_count;
  if (write(pipe_write_fd, &now, sizeof(now)) != (ssize_t)sizeof(now)) {
    /* the guest's read then blocks or fails: it sees no counter */
  }
}

static void on_atexit(qemu_plugin_id_t id, void *userdata) {
  (void)id, (void)userdata;
  if (print_total) fprintf(stderr, "insn_count: %llu instructions\n", (unsigned long long)insn_count);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
  if (info->system_emulation) {
    fprintf(stderr, "insn_count: user-mode emulation only\n");
    return -1;
  }
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "fd=", 3) == 0) {
      counter_fd = atoi(argv[i] + 3);
    } else if (strncmp(argv[i], "read=", 5) == 0) {
      sys_read = atoi(argv[i] + 5);
    } else if (strcmp(argv[i], "total=on") == 0) {
      print_total = true;
    } else {
      fprintf(stderr, "insn_count: unknown argument %s (fd=N, read=N, total=on)\n", argv[i]);
      return -1;
    }
  }
  int fds[2];
  if (pipe(fds) != 0 || dup2(fds[0], counter_fd) < 0) {
    perror("insn_count: pipe");
    return -1;
  }
  close(fds[0]);
  pipe_write_fd = fcntl(fds[1], F_DUPFD_CLOEXEC, counter_fd + 1);
  close(fds[1]);
  if (pipe_write_fd < 0) pipe_write_fd = -1;
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
  qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
  return 0;
}
