export type { BuildStore, GetOptions, ObjectInfo, PutOptions, PutResult, RequestOptions, StoreObject } from './store.js';
export { openBuildStore, type OpenStoreOptions } from './location.js';
export { FileStore, type FileStoreOptions } from './file-store.js';
export { HttpStore, type HttpStoreOptions } from './http-store.js';
export { S3Store, parseS3Location, type S3StoreOptions } from './s3-store.js';
export { mergeBuildsJson, probeConditionalWrites, updateRemoteBuildsJson, type UpdateRemoteBuildsOptions, type UpdateRemoteBuildsResult } from './remote-builds.js';
export { fetchBuildObjects, readRemoteBuilds, type FetchObjectsOptions, type FetchObjectsResult, type FetchedFile, type RemoteBuilds, type ReadRemoteBuildsOptions } from './fetch.js';
export { uploadBuildObjects, contentTypeOf, type UploadObjectsOptions, type UploadObjectsResult, type UploadedFile } from './upload.js';
export { mergeMetaForUpload } from './remote-meta.js';
