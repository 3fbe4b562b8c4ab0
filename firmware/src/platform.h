// platform.h: everything the firmware needs from the hardware, in one small interface.
// platform_esp.cc implements it with ESP-IDF (UART, CPU cycle counter, NVS, heap_caps);
// native/platform_host.cc implements it on a POSIX host (a pseudo-terminal or pipe, a
// nanosecond clock, files), so the same protocol, gallery and inference sources build and
// run natively against TFLM's reference kernels.
#ifndef TINYFACE_PLATFORM_H
#define TINYFACE_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bring up the serial link at `baud`, storage and clocks. Returns 0 on success.
int tf_platform_init(uint32_t baud);

// Read up to `max_bytes` bytes, waiting at most `timeout_ms` for the first one.
// Returns the bytes read (0: nothing arrived in time), TF_SERIAL_HANGUP when the host closed
// the port (host build on a pty: a new session starts with a fresh decoder), or
// TF_SERIAL_GONE when the link is gone for good, which ends tf_app_main().
#define TF_SERIAL_HANGUP (-2)
#define TF_SERIAL_GONE (-1)
int tf_serial_read(uint8_t* buf, size_t max_bytes, uint32_t timeout_ms);

// Write all `n` bytes (blocking until they are queued). Returns 0 on success.
int tf_serial_write(const uint8_t* buf, size_t n);

// A free-running counter of CPU cycles (wraps; differences of uint32 stay correct for one
// inference) and the clock it counts, so cycles / tf_cpu_hz() is seconds.
uint32_t tf_cycles(void);
uint32_t tf_cpu_hz(void);

// Monotonic microseconds.
uint64_t tf_micros(void);

// Why the chip last started: a TF_RESET_* value (ESP-IDF's esp_reset_reason_t); TF_RESET_UNKNOWN
// where there is no chip.
uint32_t tf_reset_reason(void);

// Free internal-SRAM heap bytes right now, PSRAM not counted (0 where it cannot be measured).
uint32_t tf_free_heap_bytes(void);

// Free PSRAM heap bytes right now (0 on a chip or board without PSRAM, or not measured).
uint32_t tf_free_psram_bytes(void);

// A 16-byte aligned block for the tensor arena: in PSRAM when `in_psram` is set and the
// board has it, else internal SRAM. NULL when it does not fit.
void* tf_arena_alloc(size_t bytes, int in_psram);

// Persistent key/value blobs (NVS on the board, files on the host).
// tf_storage_load returns the blob's size (copying at most `size` bytes), or -1 if absent.
int tf_storage_load(const char* key, void* buf, size_t size);
// tf_storage_save replaces the blob atomically. Returns 0 on success.
int tf_storage_save(const char* key, const void* buf, size_t size);

// TF_FLAG_* bits this platform adds to INFO (TF_FLAG_NATIVE on the host).
uint32_t tf_platform_flags(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // TINYFACE_PLATFORM_H
