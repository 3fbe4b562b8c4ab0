// gallery.h: the people enrolled on the device (docs/protocol.md, "Gallery"). Each person
// keeps the sum of the L2-normalised float embeddings of its samples; IDENTIFY takes the
// cosine similarity to each sum. The gallery is saved through tf_storage_save (NVS on the
// board) after every change, so enrollments survive a reset; a saved gallery made for
// another model (different sha256 or embedding size) is ignored. Uploading firmware leaves NVS
// as it was, so the blob also records the compiled-in gallery (gallery_data.h) it started from:
// a firmware with other people compiled in replaces the saved gallery with its own.
#ifndef TINYFACE_GALLERY_H
#define TINYFACE_GALLERY_H

#include <stddef.h>
#include <stdint.h>

#include "model_settings.h"
#include "tinyface_protocol.h"

struct TfPerson {
  char name[TF_MAX_NAME_BYTES];  // NUL-padded; name[0] == 0: free slot
  uint16_t samples;
  uint16_t reserved;
  float sum[TF_MODEL_OUTPUT_SIZE];  // sum of L2-normalised embeddings
};

// What is stored: a header that ties the blob to this model, every slot, then the
// TF_GALLERY_BUILTIN_HASH of the compiled-in gallery it started from (format 2 on).
struct TfGalleryBlob {
  uint32_t magic;
  uint16_t format;
  uint16_t embedding_dim;
  uint8_t model_sha256[TF_MODEL_HASH_BYTES];
  TfPerson people[TF_GALLERY_CAPACITY];
  uint32_t builtin_hash;
};

class Gallery {
 public:
  // Load the saved gallery for this model when this firmware has no compiled-in people
  // (gallery_data.h, `--enroll DIR`), or when it started from the same compiled-in gallery
  // (runtime enrollments on top of it are kept). Otherwise start from the compiled-in gallery,
  // and save it at once when it has people, so that a later firmware with none compiled in
  // keeps them.
  void Load();
  uint16_t count() const;
  // Whether Enroll(name_field, ...) would find a slot: the name is enrolled, or a slot is free.
  bool CanEnroll(const char* name_field) const;
  // Add one L2-normalised embedding to `name` (new names take the lowest free slot).
  // Returns the slot, or -1 when the name is new and the gallery is full.
  int Enroll(const char* name_field, const float* unit_embedding);
  // Remove `name_field`, or everyone when it is all NUL. Returns the people removed.
  uint16_t Delete(const char* name_field);
  // Best cosine similarity of `embedding` to a person (lowest slot on ties); -1 if empty.
  int Identify(const float* embedding, float* similarity) const;
  const TfPerson& person(int slot) const { return blob_.people[slot]; }
  bool Save();

 private:
  int Find(const char* name_field) const;
  TfGalleryBlob blob_;
};

// true for a valid name field: 1..15 bytes, then only NULs to the end (the last is NUL).
bool tf_valid_name_field(const char* field);

#endif  // TINYFACE_GALLERY_H
