// The protocol server: one request at a time, strictly in arrival order, one reply frame
// each (docs/protocol.md). Replies are streamed in three writes (header, payload pieces,
// CRC), so no transmit buffer is needed; the only frame-sized buffer is the decoder's.
#include "tinyface_app.h"

#include <math.h>
#include <new>
#include <string.h>

#include "frame_decoder.h"
#include "gallery.h"
#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "platform.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tinyface_protocol.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the protocol structs are little-endian");
static_assert(TF_MODEL_INPUT_BYTES + TF_ENROLL_REQUEST_SIZE <= TF_MAX_PAYLOAD,
              "the model input does not fit one protocol frame");

namespace {

TfOpResolver g_resolver;
alignas(tflite::MicroInterpreter) uint8_t g_interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* g_interpreter = nullptr;
uint32_t g_arena_used_bytes = 0;
uint32_t g_free_sram_bytes = 0;
uint32_t g_free_psram_bytes = 0;
uint64_t g_start_us = 0;  // tf_micros() when the firmware started: INFO's uptime_ms
Gallery g_gallery;
float g_embedding[TF_MODEL_OUTPUT_SIZE];

// The last request handled and, for ENROLL and DELETE, the reply sent: a retry (same seq, type
// and payload: its length, its CRC-32 and, compared byte for byte, its name field) of a
// state-changing request is answered from here instead of being executed again. A different
// payload under the same seq is a new request (CRC-32 alone can be collided on purpose).
bool g_have_last = false;
uint8_t g_last_type = 0;
uint16_t g_last_seq = 0;
uint16_t g_last_length = 0;
uint32_t g_last_payload_crc = 0;
uint8_t g_last_head[TF_MAX_NAME_BYTES];  // ENROLL/DELETE: the name field, compared exactly
uint8_t g_last_reply_type = 0;
// Remember() keeps a reply only if it fits (a longer one is kept as empty), so every reply a
// retry is answered with, ENROLL's, DELETE's and the ERROR either may get, must fit.
constexpr size_t kStoredReplyBytes = 8;
static_assert(TF_ENROLL_REPLY_SIZE <= kStoredReplyBytes && TF_DELETE_REPLY_SIZE <= kStoredReplyBytes &&
                  TF_ERROR_REPLY_SIZE <= kStoredReplyBytes,
              "a retried ENROLL or DELETE is answered from g_last_reply: it must hold their replies and ERROR's");
uint8_t g_last_reply[kStoredReplyBytes];
uint16_t g_last_reply_len = 0;

void PutLe16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

void SendFrame(uint8_t type, uint16_t seq, const void* a, size_t a_len, const void* b = nullptr, size_t b_len = 0) {
  uint8_t header[TF_HEADER_SIZE];
  header[0] = TF_PROTO_SYNC0;
  header[1] = TF_PROTO_SYNC1;
  header[2] = TF_PROTO_VERSION;
  header[3] = type;
  PutLe16(header + 4, seq);
  PutLe16(header + 6, (uint16_t)(a_len + b_len));
  PutLe16(header + 8, tf_header_crc(header));
  uint32_t crc = tf_crc32_update(0, header, sizeof(header));
  crc = tf_crc32_update(crc, a, a_len);
  crc = tf_crc32_update(crc, b, b_len);
  uint8_t trailer[TF_CRC_SIZE] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
  tf_serial_write(header, sizeof(header));
  if (a_len) tf_serial_write((const uint8_t*)a, a_len);
  if (b_len) tf_serial_write((const uint8_t*)b, b_len);
  tf_serial_write(trailer, sizeof(trailer));
}

void Remember(uint8_t reply_type, const void* payload, uint16_t len) {
  g_last_reply_type = reply_type;
  g_last_reply_len = len <= sizeof(g_last_reply) ? len : 0;
  memcpy(g_last_reply, payload, g_last_reply_len);
}

// `remember`: false for frame-level faults (bad CRC, too large, bad version), which are not
// a handled request and must not replace the reply a retry of the last request gets.
void SendError(uint8_t code, uint8_t request_type, uint16_t seq, uint32_t detail, bool remember = true) {
  tf_error_reply_t err;
  memset(&err, 0, sizeof(err));
  err.code = code;
  err.request_type = request_type;
  err.detail = detail;
  if (remember) Remember(TF_MSG_ERROR, &err, sizeof(err));
  SendFrame(TF_MSG_ERROR, seq, &err, sizeof(err));
}

void SendReply(uint8_t request_type, uint16_t seq, const void* a, size_t a_len, const void* b = nullptr,
               size_t b_len = 0) {
  if (b_len == 0) Remember(request_type | TF_REPLY_FLAG, a, (uint16_t)a_len);
  SendFrame(request_type | TF_REPLY_FLAG, seq, a, a_len, b, b_len);
}

int SetupModel() {
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return 1;
  if (tf_register_ops(g_resolver) != kTfLiteOk) return 2;
  uint8_t* arena = (uint8_t*)tf_arena_alloc(TF_ARENA_BYTES, TF_ARENA_IN_PSRAM);
  if (arena == nullptr) return 3;
  g_interpreter = new (g_interpreter_storage) tflite::MicroInterpreter(model, g_resolver, arena, TF_ARENA_BYTES);
  if (g_interpreter->AllocateTensors() != kTfLiteOk) {
    g_interpreter = nullptr;
    return 4;
  }
  TfLiteTensor* input = g_interpreter->input(0);
  TfLiteTensor* output = g_interpreter->output(0);
  if (input->type != kTfLiteInt8 || input->bytes != TF_MODEL_INPUT_BYTES || output->type != kTfLiteInt8 ||
      output->bytes != TF_MODEL_OUTPUT_SIZE) {
    g_interpreter = nullptr;
    return 5;
  }
  g_arena_used_bytes = (uint32_t)g_interpreter->arena_used_bytes();
  return 0;
}

// Run the model on `input`; fills cycles/us. Returns a TF status (0 = ok).
int Invoke(const uint8_t* input, uint32_t* cycles, uint32_t* latency_us) {
  if (g_interpreter == nullptr) return 100;
  memcpy(g_interpreter->input(0)->data.int8, input, TF_MODEL_INPUT_BYTES);
  const uint64_t t0 = tf_micros();
  const uint32_t c0 = tf_cycles();
  const TfLiteStatus status = g_interpreter->Invoke();
  const uint32_t c1 = tf_cycles();
  const uint64_t t1 = tf_micros();
  *cycles = c1 - c0;
  *latency_us = (uint32_t)(t1 - t0);
  return status == kTfLiteOk ? 0 : 101;
}

// The output as float (dequantized), and L2-normalised when `normalise`.
void Embedding(bool normalise) {
  const int8_t* out = g_interpreter->output(0)->data.int8;
  float norm2 = 0.0f;
  for (int i = 0; i < TF_MODEL_OUTPUT_SIZE; i++) {
    g_embedding[i] = (float)(out[i] - TF_MODEL_OUTPUT_ZERO_POINT) * (float)TF_MODEL_OUTPUT_SCALE;
    norm2 += g_embedding[i] * g_embedding[i];
  }
  if (normalise && norm2 > 0.0f) {
    const float inv = 1.0f / sqrtf(norm2);
    for (int i = 0; i < TF_MODEL_OUTPUT_SIZE; i++) g_embedding[i] *= inv;
  }
}

uint32_t HostWallUs(uint32_t latency_us) { return (tf_platform_flags() & TF_FLAG_NATIVE) ? latency_us : 0; }

void HandleInfo(const TfFrame& f) {
  if (f.length != 0 && f.length != TF_MODEL_HASH_BYTES) {
    SendError(TF_ERR_BAD_PAYLOAD, f.type, f.seq, TF_MODEL_HASH_BYTES);
    return;
  }
  if (f.length == TF_MODEL_HASH_BYTES && memcmp(f.payload, kTfModelSha256, TF_MODEL_HASH_BYTES) != 0) {
    SendError(TF_ERR_MODEL_MISMATCH, f.type, f.seq, 0);
    return;
  }
  tf_info_reply_t info;
  memset(&info, 0, sizeof(info));
  strncpy(info.board, TF_BOARD_NAME, sizeof(info.board) - 1);
  strncpy(info.firmware_version, TF_FIRMWARE_VERSION, sizeof(info.firmware_version) - 1);
  memcpy(info.model_sha256, kTfModelSha256, TF_MODEL_HASH_BYTES);
  info.input_scale = (float)TF_MODEL_INPUT_SCALE;
  info.input_zero_point = TF_MODEL_INPUT_ZERO_POINT;
  info.output_scale = (float)TF_MODEL_OUTPUT_SCALE;
  info.output_zero_point = TF_MODEL_OUTPUT_ZERO_POINT;
  info.identify_threshold = (float)TF_MODEL_THRESHOLD;
  info.arena_used_bytes = g_arena_used_bytes;
  info.free_sram_bytes = g_free_sram_bytes;
  info.free_psram_bytes = g_free_psram_bytes;
  info.cpu_hz = tf_cpu_hz();
  info.flags = tf_platform_flags();
  info.reset_reason = tf_reset_reason();
  info.uptime_ms = (uint32_t)((tf_micros() - g_start_us) / 1000u);
  info.input_h = TF_MODEL_INPUT_H;
  info.input_w = TF_MODEL_INPUT_W;
  info.input_c = TF_MODEL_INPUT_C;
  info.output_size = TF_MODEL_OUTPUT_SIZE;
  info.max_payload = TF_MAX_PAYLOAD;
  info.gallery_capacity = TF_GALLERY_CAPACITY;
  info.gallery_count = g_gallery.count();
  info.max_name_bytes = TF_MAX_NAME_BYTES;
  SendReply(f.type, f.seq, &info, sizeof(info));
}

// One inference on a frame's image for INFER and IDENTIFY: false (an ERROR sent) if the payload
// is not one input or the model failed; else ``reply`` zeroed with its timing filled in.
template <typename Reply>
bool InferForReply(const TfFrame& f, Reply* reply) {
  if (f.length != TF_MODEL_INPUT_BYTES) {
    SendError(TF_ERR_WRONG_INPUT_SHAPE, f.type, f.seq, TF_MODEL_INPUT_BYTES);
    return false;
  }
  uint32_t cycles = 0, latency_us = 0;  // locals: the reply structs are packed
  const int status = Invoke(f.payload, &cycles, &latency_us);
  if (status != 0) {
    SendError(TF_ERR_INTERNAL, f.type, f.seq, (uint32_t)status);
    return false;
  }
  memset(reply, 0, sizeof(*reply));
  reply->cycles = cycles;
  reply->latency_us = latency_us;
  reply->host_wall_us = HostWallUs(latency_us);
  return true;
}

void HandleInfer(const TfFrame& f) {
  tf_infer_reply_t reply;
  if (!InferForReply(f, &reply)) return;
  SendReply(f.type, f.seq, &reply, sizeof(reply), g_interpreter->output(0)->data.int8, TF_MODEL_OUTPUT_SIZE);
}

void HandleEnroll(const TfFrame& f) {
  if (f.length < TF_ENROLL_REQUEST_SIZE) {
    SendError(TF_ERR_BAD_PAYLOAD, f.type, f.seq, TF_ENROLL_REQUEST_SIZE + TF_MODEL_INPUT_BYTES);
    return;
  }
  if (f.length != TF_ENROLL_REQUEST_SIZE + TF_MODEL_INPUT_BYTES) {
    SendError(TF_ERR_WRONG_INPUT_SHAPE, f.type, f.seq, TF_MODEL_INPUT_BYTES);
    return;
  }
  tf_enroll_request_t request;
  memcpy(&request, f.payload, sizeof(request));
  if (!tf_valid_name_field(request.name)) {
    SendError(TF_ERR_BAD_PAYLOAD, f.type, f.seq, 0);
    return;
  }
  // Before the model runs: a full gallery answers at once, not an inference later.
  if (!g_gallery.CanEnroll(request.name)) {
    SendError(TF_ERR_GALLERY_FULL, f.type, f.seq, TF_GALLERY_CAPACITY);
    return;
  }
  uint32_t cycles = 0, latency_us = 0;
  const int status = Invoke(f.payload + TF_ENROLL_REQUEST_SIZE, &cycles, &latency_us);
  if (status != 0) {
    SendError(TF_ERR_INTERNAL, f.type, f.seq, (uint32_t)status);
    return;
  }
  Embedding(true);
  const int slot = g_gallery.Enroll(request.name, g_embedding);
  if (slot < 0) {  // not reached: CanEnroll said there is room
    SendError(TF_ERR_GALLERY_FULL, f.type, f.seq, TF_GALLERY_CAPACITY);
    return;
  }
  if (!g_gallery.Save()) {  // NVS full or a flash error: the enrollment would not survive a reset
    SendError(TF_ERR_INTERNAL, f.type, f.seq, TF_INTERNAL_NOT_SAVED);
    return;
  }
  tf_enroll_reply_t reply;
  memset(&reply, 0, sizeof(reply));
  reply.index = (uint16_t)slot;
  reply.samples = g_gallery.person(slot).samples;
  reply.count = g_gallery.count();
  SendReply(f.type, f.seq, &reply, sizeof(reply));
}

void HandleList(const TfFrame& f) {
  if (f.length != 0) {
    SendError(TF_ERR_BAD_PAYLOAD, f.type, f.seq, 0);
    return;
  }
  tf_list_reply_t head;
  head.count = g_gallery.count();
  head.capacity = TF_GALLERY_CAPACITY;
  tf_list_entry_t entries[TF_GALLERY_CAPACITY];
  uint16_t n = 0;
  for (int i = 0; i < TF_GALLERY_CAPACITY; i++) {
    const TfPerson& p = g_gallery.person(i);
    if (p.name[0] == 0) continue;
    memcpy(entries[n].name, p.name, TF_MAX_NAME_BYTES);
    entries[n].index = (uint16_t)i;
    entries[n].samples = p.samples;
    n++;
  }
  SendReply(f.type, f.seq, &head, sizeof(head), entries, n * sizeof(tf_list_entry_t));
}

void HandleDelete(const TfFrame& f) {
  if (f.length != TF_DELETE_REQUEST_SIZE) {
    SendError(TF_ERR_BAD_PAYLOAD, f.type, f.seq, TF_DELETE_REQUEST_SIZE);
    return;
  }
  tf_delete_request_t request;
  memcpy(&request, f.payload, sizeof(request));
  bool everyone = true;
  for (char c : request.name) everyone = everyone && c == 0;
  if (!everyone && !tf_valid_name_field(request.name)) {
    SendError(TF_ERR_BAD_PAYLOAD, f.type, f.seq, 0);
    return;
  }
  tf_delete_reply_t reply;
  reply.removed = g_gallery.Delete(request.name);
  if (reply.removed && !g_gallery.Save()) {
    SendError(TF_ERR_INTERNAL, f.type, f.seq, TF_INTERNAL_NOT_SAVED);
    return;
  }
  reply.count = g_gallery.count();
  SendReply(f.type, f.seq, &reply, sizeof(reply));
}

void HandleIdentify(const TfFrame& f) {
  tf_identify_reply_t reply;
  if (!InferForReply(f, &reply)) return;
  Embedding(false);
  float similarity = -1.0f;
  const int slot = g_gallery.Identify(g_embedding, &similarity);
  reply.similarity = similarity;
  reply.index = (int16_t)slot;
  if (slot >= 0) {
    reply.accepted = similarity >= (float)TF_MODEL_THRESHOLD ? 1 : 0;
    memcpy(reply.name, g_gallery.person(slot).name, TF_MAX_NAME_BYTES);
  }
  SendReply(f.type, f.seq, &reply, sizeof(reply));
}

void OnEvent(TfEventKind kind, const TfFrame& f, void*) {
  if (kind == TF_EVENT_BAD_CRC) {
    SendError(TF_ERR_BAD_CRC, f.type, f.seq, 0, false);
    return;
  }
  if (kind == TF_EVENT_TOO_LARGE) {
    SendError(TF_ERR_FRAME_TOO_LARGE, f.type, f.seq, TF_MAX_PAYLOAD, false);
    return;
  }
  if (f.version != TF_PROTO_VERSION) {
    SendError(TF_ERR_BAD_VERSION, f.type, f.seq, TF_PROTO_VERSION, false);
    return;
  }
  const uint32_t payload_crc = tf_crc32_update(0, f.payload, f.length);
  const size_t head = f.length < TF_MAX_NAME_BYTES ? f.length : TF_MAX_NAME_BYTES;
  const bool retry = g_have_last && f.seq == g_last_seq && f.type == g_last_type && f.length == g_last_length &&
                     payload_crc == g_last_payload_crc && memcmp(f.payload, g_last_head, head) == 0;
  if (retry && tf_is_non_idempotent(f.type)) {
    SendFrame(g_last_reply_type, f.seq, g_last_reply, g_last_reply_len);
    return;
  }
  g_have_last = true;
  g_last_type = f.type;
  g_last_seq = f.seq;
  g_last_length = f.length;
  g_last_payload_crc = payload_crc;
  memcpy(g_last_head, f.payload, head);
  switch (f.type) {
    case TF_MSG_PING:
      SendReply(f.type, f.seq, f.payload, f.length);
      break;
    case TF_MSG_INFO:
      HandleInfo(f);
      break;
    case TF_MSG_INFER:
      HandleInfer(f);
      break;
    case TF_MSG_ENROLL:
      HandleEnroll(f);
      break;
    case TF_MSG_LIST:
      HandleList(f);
      break;
    case TF_MSG_DELETE:
      HandleDelete(f);
      break;
    case TF_MSG_IDENTIFY:
      HandleIdentify(f);
      break;
    default:
      SendError(TF_ERR_UNKNOWN_MESSAGE, f.type, f.seq, f.type);
      break;
  }
}

// Static, not on the stack: the decoder holds one TF_MAX_FRAME buffer.
FrameDecoder g_decoder(OnEvent, nullptr);

}  // namespace

int tf_app_main(void) {
  if (tf_platform_init(TF_BOARD_BAUD) != 0) return 10;
  g_start_us = tf_micros();
  const int setup = SetupModel();
  g_gallery.Load();
  g_free_sram_bytes = tf_free_heap_bytes();
  g_free_psram_bytes = tf_free_psram_bytes();
  uint8_t chunk[512];
  for (;;) {
    // Silence for TF_IDLE_FLUSH_MS inside a frame: its missing bytes are not coming.
    const int n = tf_serial_read(chunk, sizeof(chunk), TF_IDLE_FLUSH_MS);
    if (n == TF_SERIAL_HANGUP) {
      g_decoder.Reset();
      g_have_last = false;  // seq numbers restart with the next host
      continue;
    }
    if (n < 0) break;
    if (n == 0) {
      if (g_decoder.pending_bytes()) g_decoder.Flush();
      continue;
    }
    g_decoder.Feed(chunk, (size_t)n);
  }
  return setup;
}
