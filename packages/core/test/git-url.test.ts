import { describe, expect, it } from 'vitest';
import { redactGitUrl, redactGitUrlsIn } from '../src/_git-url.js';

describe('git URL redaction', () => {
  it('drops the user info of URL-form addresses and keeps scp-like and local ones', () => {
    expect(redactGitUrl('https://user:tok@example.com/x.git')).toBe('https://example.com/x.git');
    expect(redactGitUrl('https://ghp_abc@example.com/x.git')).toBe('https://example.com/x.git');
    expect(redactGitUrl('ssh://git@example.com:22/x')).toBe('ssh://example.com:22/x');
    expect(redactGitUrl('git@example.com:org/x.git')).toBe('git@example.com:org/x.git');
    expect(redactGitUrl('/srv/config')).toBe('/srv/config');
    expect(redactGitUrlsIn("fatal: unable to access 'https://u:p@h/x/': refused")).toBe("fatal: unable to access 'https://h/x/': refused");
  });
});
