// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IInstanceTracker
/// @notice Anchors AWS Step Functions executions (models, instances, ordered states, attempt ends) by
/// their SHA-256 ids so that parties who do not trust the account owner can verify what ran.
/// @dev Every record is namespaced by the account that owns it: an instance lives under
/// `instanceKey(owner, execution)`, a model under (publisher, model), an anchor under (submitter, root).
/// Only the owner, or an operator the owner approved, writes under the owner's keys, so registering
/// the same ids from another account changes nothing for the owner.
///
/// A direct-mode instance keeps a running chain head in storage: it starts at
/// `startHead(execution, model, instanceDocument)` and becomes keccak256(head, state) for each state,
/// so one read of (stateCount, head) checks the execution, the model, the instance document and the
/// whole ordered trace. An anchored-mode instance never stores a head: its states are proven by
/// Merkle roots (`anchorStates`), its start head follows from the InstanceRegistered event, and the
/// owner pins each attempt's (stateCount, head) with `closeAnchored`, carried by the AttemptEnded and
/// InstanceTerminated events.
///
/// AWS may redrive a failed execution: `endAttempt` records that an attempt ended and leaves the
/// instance open; `terminate` (or `closeAnchored` with isFinal) makes it Final, after which every
/// write to it reverts InstanceIsFinal.
interface IInstanceTracker {
    /// @notice The life of an instance key; Moved keys were transferred away and can never be reused.
    enum Status {
        None,
        Open,
        Final,
        Moved
    }

    /// @notice How an instance's states are recorded: one event each (Direct) or under Merkle roots (Anchored).
    enum Mode {
        Direct,
        Anchored
    }

    /// @notice The stored record of an instance.
    /// @param stateCount The number of states recorded (direct) or stated by the owner (anchored).
    /// @param attempts The number of attempt ends reported so far.
    /// @param status The instance's status.
    /// @param mode The instance's mode.
    struct Instance {
        uint64 stateCount;
        uint32 attempts;
        Status status;
        Mode mode;
    }

    /// @notice The stored record of an anchored Merkle root.
    /// @param anchoredAt The block timestamp of the anchoring.
    /// @param leafCount The number of leaves the submitter says the tree has (informative only).
    struct Anchor {
        uint64 anchoredAt;
        uint32 leafCount;
    }

    // ------------------------------------------------------------------ events

    /// @notice A publisher registered a model id for the first time.
    /// @param publisher The account under which the model is registered.
    /// @param model The model id (SHA-256 of the model document).
    event ModelRegistered(address indexed publisher, bytes32 indexed model);

    /// @notice An instance was registered under its owner's key.
    /// @param key The instance key, instanceKey(owner, execution).
    /// @param owner The account that owns the instance.
    /// @param execution The execution id (SHA-256 of the execution's canonical identity document).
    /// @param model The model id the instance runs.
    /// @param instanceDocument The instance document id.
    /// @param mode The instance's mode, as uint8 in the ABI: 0 Direct, 1 Anchored.
    event InstanceRegistered(
        bytes32 indexed key,
        address indexed owner,
        bytes32 indexed execution,
        bytes32 model,
        bytes32 instanceDocument,
        Mode mode
    );

    /// @notice A direct-mode instance entered a state.
    /// @param key The instance key.
    /// @param state The state id.
    /// @param seq The state's position in the instance's trace, from 0.
    event StateRegistered(bytes32 indexed key, bytes32 indexed state, uint256 seq);

    /// @notice An attempt of an instance ended and the instance stays open for a redrive.
    /// @param key The instance key.
    /// @param endDocument The id of the attempt's end document.
    /// @param attempt The attempt that ended, from 0.
    /// @param stateCount The number of states when the attempt ended.
    /// @param head The chain head over those states.
    event AttemptEnded(
        bytes32 indexed key, bytes32 indexed endDocument, uint256 attempt, uint256 stateCount, bytes32 head
    );

    /// @notice An instance became Final; nothing can be written to it afterwards.
    /// @param key The instance key.
    /// @param endDocument The id of the final end document.
    /// @param attempt The attempt whose end is final, from 0.
    /// @param stateCount The final number of states.
    /// @param head The final chain head over all states.
    event InstanceTerminated(
        bytes32 indexed key, bytes32 indexed endDocument, uint256 attempt, uint256 stateCount, bytes32 head
    );

    /// @notice A transition between two recorded states of one direct-mode instance was proven.
    /// @param key The instance key.
    /// @param pre The state the transition leaves.
    /// @param post The state the transition enters.
    /// @param preSeq The position of `pre` in the trace.
    /// @param postSeq The position of `post` in the trace.
    event TransitionRegistered(
        bytes32 indexed key, bytes32 indexed pre, bytes32 indexed post, uint256 preSeq, uint256 postSeq
    );

    /// @notice An owner proposed to transfer an instance, or cancelled a proposal (to is zero).
    /// @param key The instance key under the current owner.
    /// @param from The current owner.
    /// @param to The proposed new owner, or zero for a cancellation.
    event TransferProposed(bytes32 indexed key, address indexed from, address indexed to);

    /// @notice An instance moved to a new owner's key; the old key is Moved for good.
    /// @param fromKey The instance key under the previous owner.
    /// @param toKey The instance key under the new owner.
    /// @param execution The execution id, the same under both keys.
    /// @param from The previous owner.
    /// @param to The new owner.
    event InstanceTransferred(
        bytes32 indexed fromKey, bytes32 indexed toKey, bytes32 indexed execution, address from, address to
    );

    /// @notice An owner approved or revoked an operator.
    /// @param owner The owner granting or revoking.
    /// @param operator The operator concerned.
    /// @param approved Whether the operator may now write under the owner's keys.
    event OperatorSet(address indexed owner, address indexed operator, bool approved);

    /// @notice An account registered its client id.
    /// @param account The account.
    /// @param clientId The client id.
    event ClientIdRegistered(address indexed account, string clientId);

    /// @notice An account registered (or rotated) its server certificate fingerprint.
    /// @param account The account, which signed the fingerprint.
    /// @param fingerprint The SHA-256 fingerprint of the DER certificate.
    /// @param signature The account's EIP-191 signature of the fingerprint.
    event CertificateRegistered(address indexed account, bytes32 indexed fingerprint, bytes signature);

    /// @notice A submitter anchored a Merkle root over state leaves.
    /// @param submitter The account under which the root is anchored.
    /// @param root The Merkle root.
    /// @param leafCount The number of leaves the submitter says the tree has.
    event StatesAnchored(address indexed submitter, bytes32 indexed root, uint256 leafCount);

    // ------------------------------------------------------------------ errors

    /// @notice A zero identifier was given where a SHA-256 id (or a chain head) is required.
    error ZeroIdentifier();

    /// @notice The address is zero.
    error ZeroAddress();

    /// @notice The caller is neither the owner nor an operator the owner approved.
    /// @param owner The owner whose keys the call writes under.
    /// @param caller The caller.
    error NotOwnerOrOperator(address owner, address caller);

    /// @notice The instance key is already taken (by an instance in any status, including Moved).
    /// @param key The instance key.
    error InstanceAlreadyRegistered(bytes32 key);

    /// @notice No instance is registered under the key.
    /// @param key The instance key.
    error InstanceNotRegistered(bytes32 key);

    /// @notice The instance is Final.
    /// @param key The instance key.
    error InstanceIsFinal(bytes32 key);

    /// @notice The instance was transferred away from this key.
    /// @param key The instance key.
    error InstanceIsMoved(bytes32 key);

    /// @notice The call needs the other mode.
    /// @param key The instance key.
    /// @param mode The instance's mode: 0 Direct, 1 Anchored.
    error WrongMode(bytes32 key, uint8 mode);

    /// @notice The batch does not start where the instance's trace ends (a resend or a gap).
    /// @param key The instance key.
    /// @param expected The instance's current state count.
    /// @param given The sequence number the call claimed to start at.
    error SequenceMismatch(bytes32 key, uint256 expected, uint256 given);

    /// @notice The attempt is not the one the call may report.
    /// @param key The instance key.
    /// @param expected The number of attempt ends reported so far: the next attempt to report.
    /// @param given The attempt the call named.
    error AttemptMismatch(bytes32 key, uint256 expected, uint256 given);

    /// @notice An anchored instance's stated count is lower than the one already stated.
    /// @param key The instance key.
    /// @param stored The stored count.
    /// @param given The count the call stated.
    error CountDecreased(bytes32 key, uint256 stored, uint256 given);

    /// @notice No states were given.
    error NoStates();

    /// @notice A trace suffix does not hash to the instance's stored head.
    /// @param key The instance key.
    /// @param computed The head computed from the given suffix.
    /// @param stored The instance's head.
    error TraceMismatch(bytes32 key, bytes32 computed, bytes32 stored);

    /// @notice The transition's positions are not a pre-state followed by a post-state in the suffix.
    /// @param postOffset The offset given for the post-state.
    /// @param suffixLength The length of the suffix.
    error InvalidTransition(uint256 postOffset, uint256 suffixLength);

    /// @notice The signature does not recover to the sender.
    /// @param signer The address the signature recovers to (zero if it does not recover).
    /// @param sender The sender.
    error CertificateSignerMismatch(address signer, address sender);

    /// @notice The submitter already anchored this root.
    /// @param submitter The submitter.
    /// @param root The root.
    error AnchorAlreadyExists(address submitter, bytes32 root);

    /// @notice The client id is empty or longer than 64 bytes.
    /// @param length Its length in bytes.
    error InvalidClientId(uint256 length);

    /// @notice The caller is not the proposed new owner of the instance.
    /// @param key The instance key under the current owner.
    /// @param caller The caller.
    error NotPendingOwner(bytes32 key, address caller);

    /// @notice An instance cannot be proposed to its own owner.
    /// @param to The refused target.
    error InvalidTransferTarget(address to);

    // ------------------------------------------------------------------ models and instances

    /// @notice Registers a model id under `owner`; the first call stores the time, later calls change nothing.
    /// @param owner The publisher under whose key the model is registered.
    /// @param model The SHA-256 of the model document.
    function registerModel(address owner, bytes32 model) external;

    /// @notice Registers a direct-mode instance with its first states, and its model if new for `owner`.
    /// @param owner The account that will own the instance.
    /// @param execution The execution id.
    /// @param model The model id.
    /// @param instanceDocument The instance document id.
    /// @param states The state ids in the order the instance entered them (may be empty).
    function registerExecution(
        address owner,
        bytes32 execution,
        bytes32 model,
        bytes32 instanceDocument,
        bytes32[] calldata states
    ) external;

    /// @notice Registers an anchored-mode instance, and its model if new for `owner`; its states go under Merkle roots.
    /// @param owner The account that will own the instance.
    /// @param execution The execution id.
    /// @param model The model id.
    /// @param instanceDocument The instance document id.
    function registerAnchoredExecution(address owner, bytes32 execution, bytes32 model, bytes32 instanceDocument)
        external;

    /// @notice Appends states, in order, to an open direct-mode instance.
    /// @param owner The instance's owner.
    /// @param execution The execution id.
    /// @param fromSeq The sequence number of the first state given, which must be the current count.
    /// @param states The state ids in order (at least one).
    function registerStates(address owner, bytes32 execution, uint256 fromSeq, bytes32[] calldata states) external;

    /// @notice Appends states to an open direct-mode instance and reports that its attempt ended; it stays open.
    /// @param owner The instance's owner.
    /// @param execution The execution id.
    /// @param fromSeq The sequence number of the first state given, checked even when no state is given.
    /// @param states The last state ids of the attempt in order (may be empty).
    /// @param attempt The attempt that ended, which must equal the number of attempt ends reported so far.
    /// @param endDocument The id of the attempt's end document.
    function endAttempt(
        address owner,
        bytes32 execution,
        uint256 fromSeq,
        bytes32[] calldata states,
        uint256 attempt,
        bytes32 endDocument
    ) external;

    /// @notice Appends the last states to an open direct-mode instance and makes it Final.
    /// @param owner The instance's owner.
    /// @param execution The execution id.
    /// @param fromSeq The sequence number of the first state given, checked even when no state is given.
    /// @param states The last state ids in order (may be empty).
    /// @param attempt A new attempt end (the number reported so far) or the last reported one (that number minus one).
    /// @param endDocument The id of the final end document.
    function terminate(
        address owner,
        bytes32 execution,
        uint256 fromSeq,
        bytes32[] calldata states,
        uint256 attempt,
        bytes32 endDocument
    ) external;

    /// @notice States an open anchored-mode instance's (count, head) at the end of an attempt, finally or not.
    /// @param owner The instance's owner.
    /// @param execution The execution id.
    /// @param attempt The attempt that ended, under endAttempt's rule when not final and terminate's when final.
    /// @param stateCount The number of states so far, never lower than the count stated before.
    /// @param head The chain head over those states, computed from the start head as in direct mode.
    /// @param endDocument The id of the end document.
    /// @param isFinal Whether the instance becomes Final.
    function closeAnchored(
        address owner,
        bytes32 execution,
        uint256 attempt,
        uint256 stateCount,
        bytes32 head,
        bytes32 endDocument,
        bool isFinal
    ) external;

    /// @notice Proves, from a trace suffix, that one recorded state of a direct-mode instance follows another.
    /// @param owner The instance's owner.
    /// @param execution The execution id.
    /// @param headBeforePre The chain head just before the pre-state.
    /// @param suffix The state ids from the pre-state (index 0) to the last recorded state.
    /// @param postOffset The index of the post-state within `suffix` (at least 1).
    function registerTransition(
        address owner,
        bytes32 execution,
        bytes32 headBeforePre,
        bytes32[] calldata suffix,
        uint256 postOffset
    ) external;

    /// @notice Proposes to move the caller's instance to another account's key, or cancels the proposal.
    /// @param execution The execution id of the caller's instance.
    /// @param to The proposed new owner, or zero to cancel.
    function proposeTransfer(bytes32 execution, address to) external;

    /// @notice Accepts a proposed transfer: the instance moves to the caller's key and the old key becomes Moved.
    /// @param from The current owner who proposed the transfer to the caller.
    /// @param execution The execution id.
    function acceptTransfer(address from, bytes32 execution) external;

    /// @notice Approves or revokes an operator that may write under the caller's keys (but not transfer).
    /// @param operator The operator, for example a tracker service key.
    /// @param approved True to approve, false to revoke.
    function setOperator(address operator, bool approved) external;

    // ------------------------------------------------------------------ accounts and certificates

    /// @notice Registers (or replaces) the caller's client id.
    /// @param clientId A non-empty id of at most 64 bytes.
    function registerClientId(string calldata clientId) external;

    /// @notice Registers (or rotates) the caller's certificate fingerprint with the caller's signature of it.
    /// @param fingerprint The SHA-256 fingerprint of the DER-encoded X.509 certificate.
    /// @param signature The 65-byte EIP-191 signature of the 32 fingerprint bytes by the caller.
    function registerCertificate(bytes32 fingerprint, bytes calldata signature) external;

    // ------------------------------------------------------------------ Merkle anchors

    /// @notice Anchors a Merkle root over state leaves (see `stateLeaf`) under the caller's key.
    /// @param root The Merkle root (OpenZeppelin sorted-pair tree).
    /// @param leafCount The number of leaves under the root, as the caller states it.
    function anchorStates(bytes32 root, uint32 leafCount) external;

    // ------------------------------------------------------------------ views

    /// @notice The stored record under an instance key.
    /// @param key The instance key.
    /// @return stateCount The number of states.
    /// @return attempts The number of attempt ends reported.
    /// @return status The status.
    /// @return mode The mode.
    function instances(bytes32 key)
        external
        view
        returns (uint64 stateCount, uint32 attempts, Status status, Mode mode);

    /// @notice The account an instance's owner proposed to transfer it to (zero when none).
    /// @param key The instance key under the current owner.
    /// @return The proposed new owner.
    function pendingOwner(bytes32 key) external view returns (address);

    /// @notice Whether an operator may write under an owner's keys.
    /// @param owner The owner.
    /// @param operator The operator.
    /// @return Whether the owner approved the operator.
    function isOperator(address owner, address operator) external view returns (bool);

    /// @notice The client id an account registered (empty when none).
    /// @param account The account.
    /// @return The client id.
    function clientIdOf(address account) external view returns (string memory);

    /// @notice The key under which an owner's instance of an execution is stored.
    /// @param owner The owner.
    /// @param execution The execution id.
    /// @return keccak256(abi.encode(owner, execution)).
    function instanceKey(address owner, bytes32 execution) external pure returns (bytes32);

    /// @notice The chain head of an instance before its first state.
    /// @param execution The execution id.
    /// @param model The model id.
    /// @param instanceDocument The instance document id.
    /// @return keccak256(abi.encode(execution, model, instanceDocument)).
    function startHead(bytes32 execution, bytes32 model, bytes32 instanceDocument) external pure returns (bytes32);

    /// @notice The leaf of a state in an anchored tree.
    /// @param execution The execution id.
    /// @param state The state id.
    /// @param seq The state's position in the instance's trace.
    /// @return keccak256 of keccak256 of abi.encode(execution, state, seq).
    function stateLeaf(bytes32 execution, bytes32 state, uint256 seq) external pure returns (bytes32);

    /// @notice An owner's instance of an execution.
    /// @param owner The owner.
    /// @param execution The execution id.
    /// @return stateCount The number of states.
    /// @return attempts The number of attempt ends reported.
    /// @return status The status (None when not registered).
    /// @return mode The mode.
    /// @return head The stored chain head in direct mode; zero in anchored mode (see AttemptEnded, InstanceTerminated).
    function instanceOf(address owner, bytes32 execution)
        external
        view
        returns (uint64 stateCount, uint32 attempts, Status status, Mode mode, bytes32 head);

    /// @notice When a publisher registered a model.
    /// @param publisher The publisher.
    /// @param model The model id.
    /// @return registeredAt The block timestamp, zero when that publisher never registered the model.
    function modelOf(address publisher, bytes32 model) external view returns (uint64 registeredAt);

    /// @notice A submitter's anchor of a root.
    /// @param submitter The submitter.
    /// @param root The Merkle root.
    /// @return anchoredAt The block timestamp, zero when that submitter never anchored the root.
    /// @return leafCount The leaf count the submitter stated.
    function anchorOf(address submitter, bytes32 root) external view returns (uint64 anchoredAt, uint32 leafCount);

    /// @notice Checks a state against a root that a given submitter anchored.
    /// @param submitter The account whose anchor is checked.
    /// @param root The Merkle root.
    /// @param execution The execution id.
    /// @param state The state id.
    /// @param seq The state's position in the instance's trace.
    /// @param proof The Merkle proof of the leaf.
    /// @return True only when that submitter anchored that root and the proof holds.
    function verifyAnchoredState(
        address submitter,
        bytes32 root,
        bytes32 execution,
        bytes32 state,
        uint256 seq,
        bytes32[] calldata proof
    ) external view returns (bool);

    /// @notice The certificate an account registered.
    /// @param account The account.
    /// @return fingerprint The SHA-256 fingerprint (zero when none).
    /// @return signature The account's signature of the fingerprint.
    /// @return registeredAt The block timestamp of the registration.
    function certificateOf(address account)
        external
        view
        returns (bytes32 fingerprint, bytes memory signature, uint64 registeredAt);
}
