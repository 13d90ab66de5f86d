export * from './platforms.js';
export * from './set-platform.js';
export * from './convert.js';
export * from './ova.js';
export * from './platform-image.js';
export { probeAccelerator, defaultAccelCacheDir, type Accelerator, type ProbeAcceleratorOptions } from './accel.js';
export { prepareAppliance, type Appliance, type PrepareApplianceOptions } from './appliance.js';
export {
  directExecutor, vmExecutor, selectExecutor,
  type Executor, type ExecutorRunOptions, type ExecutorChoice, type VmExecutorOptions, type SelectExecutorOptions,
} from './executor.js';
export {
  createDisk, estimateDiskSize, diskKernelArgs,
  type CreateDiskOptions, type DiskSizeEstimate, type EstimateDiskSizeOptions, type ImageResult,
} from './disk.js';
export { writeImage, buildImage, convertImage, type WriteImageOptions, type BuildImageOptions, type ConvertImageOptions, type ImagePlatform } from './build-image.js';
export {
  bootCheck, qemuArgs, findOvmf, createBlankDisk, imageSectorSize,
  type BootCheckOptions, type BootCheckResult, type Firmware, type OvmfFiles, type QemuArgsOptions,
} from './boot.js';
