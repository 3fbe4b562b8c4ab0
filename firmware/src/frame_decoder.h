// frame_decoder.h: the receiving half of the tinyface protocol (docs/protocol.md,
// "Receiving"); behaves exactly like tinyface.protocol.codec.StreamDecoder: hunt for the
// sync bytes, check the header CRC (wrong: drop one byte), reject a length over
// TF_MAX_PAYLOAD (FRAME_TOO_LARGE, drop the header), wait for the payload and CRC (wrong:
// BAD_CRC, drop one byte and rescan). It owns one TF_MAX_FRAME buffer and never writes or
// reads outside it, whatever bytes arrive.
#ifndef TINYFACE_FRAME_DECODER_H
#define TINYFACE_FRAME_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "tinyface_protocol.h"

struct TfFrame {
  uint8_t version;
  uint8_t type;
  uint16_t seq;
  uint16_t length;
  const uint8_t* payload;  // valid only during the callback
};

enum TfEventKind { TF_EVENT_FRAME = 0, TF_EVENT_BAD_CRC = 1, TF_EVENT_TOO_LARGE = 2 };

// Called for each accepted frame or rejected-but-intact header, in arrival order.
typedef void (*TfFrameHandler)(TfEventKind kind, const TfFrame& frame, void* context);

class FrameDecoder {
 public:
  FrameDecoder(TfFrameHandler handler, void* context) : handler_(handler), context_(context) {}

  // Feed received bytes; the handler runs for every event they complete.
  void Feed(const uint8_t* data, size_t n);

  // The link went idle: give up on an incomplete frame at the front and decode what follows.
  void Flush();

  // Forget everything buffered (a new host session does not resume an old half frame).
  void Reset() { start_ = end_ = 0; }

  size_t pending_bytes() const { return end_ - start_; }
  uint32_t garbage_bytes() const { return garbage_bytes_; }
  uint32_t frames() const { return frames_; }

 private:
  void Drain();
  void Drop(size_t n);

  TfFrameHandler handler_;
  void* context_;
  uint8_t buf_[TF_MAX_FRAME];
  size_t start_ = 0;  // undecided bytes are buf_[start_, end_)
  size_t end_ = 0;
  uint32_t garbage_bytes_ = 0;
  uint32_t frames_ = 0;
};

#endif  // TINYFACE_FRAME_DECODER_H
