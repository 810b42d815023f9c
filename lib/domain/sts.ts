/** What jitv asks STS for (CONTRACT.md section 5), independent of the SDK. */
export interface SessionTag {
  readonly Key: string;
  readonly Value: string;
}

export interface AssumeRoleRequest {
  readonly roleArn: string;
  /** The task id. */
  readonly roleSessionName: string;
  /** The agent id, sanitised to `[\w+=,.@-]{2,64}`. */
  readonly sourceIdentity: string;
  /** Rendered session policy, compact JSON. */
  readonly policy: string;
  readonly tags: readonly SessionTag[];
  /** 900..3600. */
  readonly durationSeconds: number;
}

export interface IssuedCredentials {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly SessionToken: string;
  /** RFC 3339. */
  readonly Expiration: string;
}

/** STS limits checked before any call (AssumeRole API reference). */
export const STS_LIMITS = {
  /** Session policy plain-text size after whitespace removal. */
  maxPolicyChars: 2048,
  maxTags: 50,
  maxTagKeyLength: 128,
  maxTagValueLength: 256,
  minDurationSeconds: 900,
  /** Role chaining caps sessions at one hour. */
  maxDurationSeconds: 3600,
} as const;
