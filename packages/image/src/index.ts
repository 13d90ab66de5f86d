export * from './platforms.js';
export * from './set-platform.js';
export * from './convert.js';
export * from './ova.js';
export * from './platform-image.js';
export { probeAccelerator, accelCacheKey, defaultAccelCacheDir, readCachedAccelerator, type Accelerator, type ProbeAcceleratorOptions } from './accel.js';
export { prepareAppliance, applianceKey, type Appliance, type PrepareApplianceOptions } from './appliance.js';
export {
  directExecutor, vmExecutor, selectExecutor, directUnavailable, detachStaleLoops,
  type Executor, type ExecutorRunOptions, type ExecutorChoice, type VmExecutorOptions, type SelectExecutorOptions,
} from './executor.js';
export {
  createDisk, estimateDiskSize, diskKernelArgs, FIXED_PARTITIONS_MIB,
  type CreateDiskOptions, type DiskSizeEstimate, type EstimateDiskSizeOptions, type ImageResult,
} from './disk.js';
export { writeImage, buildImage, convertImage, type WriteImageOptions, type BuildImageOptions, type ConvertImageOptions, type ImagePlatform } from './build-image.js';
export {
  bootCheck, qemuArgs, findOvmf, createBlankDisk, imageSectorSize,
  type BootCheckOptions, type BootCheckResult, type Firmware, type OvmfFiles, type QemuArgsOptions,
} from './boot.js';
export { requireHostTools, APPLIANCE_PACKAGES, TOOL_PACKAGES } from './_host-packages.js';
export type { GptPartition } from './_gpt.js';
export type { SectorSize } from './_prepare.js';
export { readGpt, type GptTable } from './_gpt.js';
