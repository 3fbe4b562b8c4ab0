// esp_timer.h for the rv32 build: ESP-NN's TFLM kernels (kernels/esp_nn/*.cc) time each
// call with esp_timer_get_time() into counters nothing reads. Here it is a constant, so
// the instruction count stays deterministic (on the chip each call costs a few dozen cycles).
#ifndef TINYFACE_RV32_ESP_TIMER_H
#define TINYFACE_RV32_ESP_TIMER_H

#include <stdint.h>

static inline int64_t esp_timer_get_time(void) { return 0; }

#endif  // TINYFACE_RV32_ESP_TIMER_H
