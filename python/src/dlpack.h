#pragma once
// The DLPack C ABI (https://dmlc.github.io/dlpack/latest/c_api.html), written
// from the public specification: the structs two libraries exchange inside a
// PyCapsule to share a tensor without copying. Layouts must match the spec
// exactly; field names follow it.
#include <cstdint>

extern "C" {

// The ABI version this file describes (DLPack 1.0).
#define KILN_DLPACK_MAJOR_VERSION 1
#define KILN_DLPACK_MINOR_VERSION 0

// DLManagedTensorVersioned::flags bits.
#define KILN_DLPACK_FLAG_READ_ONLY (1ULL << 0)
#define KILN_DLPACK_FLAG_IS_COPIED (1ULL << 1)

typedef enum {
  kDLCPU = 1,
  kDLCUDA = 2,
  kDLCUDAHost = 3,
  kDLCUDAManaged = 13,
} DLDeviceType;

typedef struct {
  DLDeviceType device_type;
  int32_t device_id;
} DLDevice;

typedef enum {
  kDLInt = 0,
  kDLUInt = 1,
  kDLFloat = 2,
  kDLOpaqueHandle = 3,
  kDLBfloat = 4,
  kDLComplex = 5,
  kDLBool = 6,
} DLDataTypeCode;

typedef struct {
  uint8_t code;  // a DLDataTypeCode
  uint8_t bits;
  uint16_t lanes;
} DLDataType;

typedef struct {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; NULL means compact row-major
  uint64_t byte_offset;
} DLTensor;

// The legacy (pre-1.0) managed tensor, in a capsule named "dltensor".
typedef struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensor* self);
} DLManagedTensor;

typedef struct {
  uint32_t major;
  uint32_t minor;
} DLPackVersion;

// The 1.x managed tensor, in a capsule named "dltensor_versioned".
typedef struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
} DLManagedTensorVersioned;

}  // extern "C"
