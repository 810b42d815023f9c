import type { AssumeRoleRequest, IssuedCredentials } from "../domain/sts.js";

/**
 * Port: turns an {@link AssumeRoleRequest} into credentials. `StsBroker` calls STS;
 * `SandboxBroker` records the request and returns clearly-marked sandbox credentials.
 * Implementations throw {@link JitvError} subclasses only.
 */
export interface CredentialBroker {
  assumeRole(request: AssumeRoleRequest): Promise<IssuedCredentials>;
}
