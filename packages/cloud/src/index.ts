export { createAwsClients, type AwsClients, type AwsClientOptions } from './aws-clients.js';
export {
  uploadAmi,
  ec2Architecture,
  stagingKey,
  registerImageInput,
  type AmiEntry,
  type UploadAmiOptions,
  type UploadAmiResult,
} from './aws-upload.js';
export { replicateAmi, type ReplicateAmiOptions, type ReplicateAmiResult } from './aws-replicate.js';
export { vmdkVirtualSize, gibRoundedUp } from './vmdk.js';
