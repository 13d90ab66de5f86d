export { PLATFORMS, listPlatforms, type PlatformSpec } from './platforms.js';
export {
  derivePlatformImage,
  derivePlatformImages,
  type DerivePlatformImageOptions,
  type DerivePlatformImagesOptions,
  type PlatformImage,
} from './platform-image.js';
export { probeAccelerator, defaultAccelCacheDir, type Accelerator, type ProbeAcceleratorOptions } from './accel.js';
export { prepareAppliance, type Appliance, type PrepareApplianceOptions } from './appliance.js';
export {
  directExecutor, vmExecutor, selectExecutor,
  type Executor, type ExecutorRunOptions, type ExecutorChoice, type VmExecutorOptions, type SelectExecutorOptions,
} from './executor.js';
export { createDisk, type CreateDiskOptions, type ImageResult } from './disk.js';
export { writeImage, buildImage, convertImage, type WriteImageOptions, type BuildImageOptions, type ConvertImageOptions, type ImagePlatform } from './build-image.js';
export {
  bootCheck, qemuArgs, findOvmf,
  type BootCheckOptions, type BootCheckResult, type Firmware, type OvmfFiles, type QemuArgsOptions,
} from './boot.js';
