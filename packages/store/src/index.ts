export type { BuildStore, GetOptions, ObjectInfo, PutOptions, PutResult, RequestOptions, StoreObject } from './store.js';
export { openBuildStore, type OpenStoreOptions } from './location.js';
export { FileStore, type FileStoreOptions } from './file-store.js';
export { HttpStore, type HttpStoreOptions } from './http-store.js';
export { S3Store, parseS3Location, type S3StoreOptions } from './s3-store.js';
export { mergeBuildsJson, probeConditionalWrites, updateRemoteBuildsJson, type UpdateRemoteBuildsOptions, type UpdateRemoteBuildsResult } from './remote-builds.js';
export { buildFetch, type BuildFetchOptions, type BuildFetchResult, type FetchedFile } from './fetch.js';
export { buildUpload, contentTypeOf, type BuildUploadOptions, type BuildUploadResult, type UploadedFile } from './upload.js';
export { redactUrl } from './_util.js';
