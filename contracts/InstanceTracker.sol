// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";

import {IInstanceTracker} from "./IInstanceTracker.sol";

/// @title InstanceTracker
/// @notice Anchors AWS Step Functions executions under the keys of the accounts that own them.
/// @dev See IInstanceTracker for the model. Each external function checks its arguments and the
/// caller first, then writes storage, then emits. The one exception is the running head of a batch:
/// the per-state loop checks, chains and emits each state in one pass (a second pass would cost
/// about a hundred gas per state), so the head is written after the loop's events; a zero state id
/// reverts the whole call, so no partial effect or event survives. `multicall` batches any of these
/// calls into one transaction. No constructor: the init code is the same for every deployer, so a
/// CREATE2 address is computable offline.
contract InstanceTracker is IInstanceTracker, Multicall {
    /// @dev The fingerprint and the registration time share nothing (32 + 8 bytes), so they take
    /// slots 0 and 1; the signature (65 bytes) follows as a dynamic `bytes`.
    struct Certificate {
        bytes32 fingerprint;
        uint64 registeredAt;
        bytes signature;
    }

    /// @inheritdoc IInstanceTracker
    /// @dev Layout: stateCount (8 bytes), attempts (4), status (1) and mode (1) fill 14 bytes of ONE
    /// slot, so the checks of a write (status, mode, sequence, attempt) cost one cold SLOAD and the
    /// update of count, attempts and status only touches that slot again while it is warm (the
    /// legacy code generator writes the members one by one: 100 gas for each after the first).
    mapping(bytes32 key => Instance) public instances;

    /// @dev Direct mode only: the running chain head, written at registration (the head after the
    /// first batch, or the start head) and once per later batch. Anchored instances never write it:
    /// their (count, head) is pinned by the AttemptEnded and InstanceTerminated events, which keeps
    /// an anchored termination to the instance slot alone (no second cold slot).
    mapping(bytes32 key => bytes32) private _heads;

    /// @inheritdoc IInstanceTracker
    mapping(bytes32 key => address) public pendingOwner;

    /// @dev (publisher, model) key => registration timestamp; zero means not registered by that publisher.
    mapping(bytes32 modelKey => uint64) private _modelRegisteredAt;

    /// @dev (submitter, root) key => anchor; anchoredAt (8 bytes) and leafCount (4) share one slot.
    mapping(bytes32 anchorKey => Anchor) private _anchors;

    /// @inheritdoc IInstanceTracker
    mapping(address owner => mapping(address operator => bool)) public isOperator;

    /// @inheritdoc IInstanceTracker
    mapping(address account => string) public clientIdOf;

    mapping(address account => Certificate) private _certificates;

    // ------------------------------------------------------------------ models and instances

    /// @inheritdoc IInstanceTracker
    function registerModel(address owner, bytes32 model) external {
        _requireOwnerOrOperator(owner);
        if (model == bytes32(0)) revert ZeroIdentifier();
        _ensureModel(owner, model);
    }

    /// @inheritdoc IInstanceTracker
    /// @dev Writes the instance slot and the head once each: the head of the first batch is computed in memory.
    function registerExecution(
        address owner,
        bytes32 execution,
        bytes32 model,
        bytes32 instanceDocument,
        bytes32[] calldata states
    ) external {
        bytes32 key = _requireNewInstance(owner, execution, model, instanceDocument);
        instances[key] = Instance(uint64(states.length), 0, Status.Open, Mode.Direct);
        _ensureModel(owner, model);
        emit InstanceRegistered(key, owner, execution, model, instanceDocument, Mode.Direct);
        _heads[key] = _appendStates(key, _startHead(execution, model, instanceDocument), 0, states);
    }

    /// @inheritdoc IInstanceTracker
    function registerAnchoredExecution(address owner, bytes32 execution, bytes32 model, bytes32 instanceDocument)
        external
    {
        bytes32 key = _requireNewInstance(owner, execution, model, instanceDocument);
        instances[key] = Instance(0, 0, Status.Open, Mode.Anchored);
        _ensureModel(owner, model);
        emit InstanceRegistered(key, owner, execution, model, instanceDocument, Mode.Anchored);
    }

    /// @inheritdoc IInstanceTracker
    function registerStates(address owner, bytes32 execution, uint256 fromSeq, bytes32[] calldata states) external {
        if (states.length == 0) revert NoStates();
        (bytes32 key, Instance storage record) = _requireOpen(owner, execution, Mode.Direct);
        uint256 count = _requireSequence(key, record, fromSeq);
        record.stateCount = uint64(count + states.length);
        _heads[key] = _appendStates(key, _heads[key], count, states);
    }

    /// @inheritdoc IInstanceTracker
    function endAttempt(
        address owner,
        bytes32 execution,
        uint256 fromSeq,
        bytes32[] calldata states,
        uint256 attempt,
        bytes32 endDocument
    ) external {
        if (endDocument == bytes32(0)) revert ZeroIdentifier();
        (bytes32 key, Instance storage record) = _requireOpen(owner, execution, Mode.Direct);
        uint256 count = _requireSequence(key, record, fromSeq);
        uint32 attempts = _requireNextAttempt(key, record, attempt);
        uint256 total = count + states.length;
        instances[key] = Instance(uint64(total), attempts, Status.Open, Mode.Direct);
        bytes32 head = _appendStatesAndStoreHead(key, count, states);
        emit AttemptEnded(key, endDocument, attempt, total, head);
    }

    /// @inheritdoc IInstanceTracker
    function terminate(
        address owner,
        bytes32 execution,
        uint256 fromSeq,
        bytes32[] calldata states,
        uint256 attempt,
        bytes32 endDocument
    ) external {
        if (endDocument == bytes32(0)) revert ZeroIdentifier();
        (bytes32 key, Instance storage record) = _requireOpen(owner, execution, Mode.Direct);
        uint256 count = _requireSequence(key, record, fromSeq);
        uint32 attempts = _requireFinalAttempt(key, record, attempt);
        uint256 total = count + states.length;
        instances[key] = Instance(uint64(total), attempts, Status.Final, Mode.Direct);
        bytes32 head = _appendStatesAndStoreHead(key, count, states);
        emit InstanceTerminated(key, endDocument, attempt, total, head);
    }

    /// @inheritdoc IInstanceTracker
    /// @dev The contract cannot check the stated head (it never sees the anchored states); it pins
    /// the owner's statement in the event, where a verifier compares it with the anchored leaves.
    function closeAnchored(
        address owner,
        bytes32 execution,
        uint256 attempt,
        uint256 stateCount,
        bytes32 head,
        bytes32 endDocument,
        bool isFinal
    ) external {
        if (head == bytes32(0) || endDocument == bytes32(0)) revert ZeroIdentifier();
        (bytes32 key, Instance storage record) = _requireOpen(owner, execution, Mode.Anchored);
        uint256 stored = record.stateCount;
        if (stateCount < stored) revert CountDecreased(key, stored, stateCount);
        uint32 attempts =
            isFinal ? _requireFinalAttempt(key, record, attempt) : _requireNextAttempt(key, record, attempt);
        instances[key] = Instance(
            SafeCast.toUint64(stateCount), attempts, isFinal ? Status.Final : Status.Open, Mode.Anchored
        );
        if (isFinal) {
            emit InstanceTerminated(key, endDocument, attempt, stateCount, head);
        } else {
            emit AttemptEnded(key, endDocument, attempt, stateCount, head);
        }
    }

    /// @inheritdoc IInstanceTracker
    /// @dev Allowed on Open and Final instances alike: it proves an order already recorded and
    /// changes no stored value, so finality does not forbid it. Not on a Moved key: the record lives
    /// on under the new owner's key, which is where its transitions belong.
    function registerTransition(
        address owner,
        bytes32 execution,
        bytes32 headBeforePre,
        bytes32[] calldata suffix,
        uint256 postOffset
    ) external {
        _requireOwnerOrOperator(owner);
        bytes32 key = _instanceKey(owner, execution);
        Instance storage record = instances[key];
        _requireRecorded(key, record.status);
        _requireMode(key, record.mode, Mode.Direct);
        uint256 length = suffix.length;
        uint256 count = record.stateCount;
        if (postOffset == 0 || postOffset >= length || length > count) revert InvalidTransition(postOffset, length);
        bytes32 head = headBeforePre;
        for (uint256 i = 0; i < length; ++i) {
            head = _chain(head, suffix[i]);
        }
        bytes32 stored = _heads[key];
        if (head != stored) revert TraceMismatch(key, head, stored);
        uint256 preSeq = count - length;
        emit TransitionRegistered(key, suffix[0], suffix[postOffset], preSeq, preSeq + postOffset);
    }

    /// @inheritdoc IInstanceTracker
    /// @dev Keyed by msg.sender, so only the owner (never an operator) can propose its own instance.
    function proposeTransfer(bytes32 execution, address to) external {
        bytes32 key = _instanceKey(msg.sender, execution);
        _requireRecorded(key, instances[key].status);
        if (to == msg.sender) revert InvalidTransferTarget(to);
        pendingOwner[key] = to;
        emit TransferProposed(key, msg.sender, to);
    }

    /// @inheritdoc IInstanceTracker
    /// @dev The old key keeps its count (and head) for the record but is Moved: nothing can be
    /// written or registered under it again.
    function acceptTransfer(address from, bytes32 execution) external {
        bytes32 fromKey = _instanceKey(from, execution);
        if (pendingOwner[fromKey] != msg.sender) revert NotPendingOwner(fromKey, msg.sender);
        bytes32 toKey = _instanceKey(msg.sender, execution);
        if (instances[toKey].status != Status.None) revert InstanceAlreadyRegistered(toKey);
        Instance storage source = instances[fromKey];
        Instance memory moved = source;
        instances[toKey] = moved;
        if (moved.mode == Mode.Direct) _heads[toKey] = _heads[fromKey];
        source.status = Status.Moved;
        delete pendingOwner[fromKey];
        emit InstanceTransferred(fromKey, toKey, execution, from, msg.sender);
    }

    /// @inheritdoc IInstanceTracker
    function setOperator(address operator, bool approved) external {
        if (operator == address(0)) revert ZeroAddress();
        isOperator[msg.sender][operator] = approved;
        emit OperatorSet(msg.sender, operator, approved);
    }

    // ------------------------------------------------------------------ accounts and certificates

    /// @inheritdoc IInstanceTracker
    function registerClientId(string calldata clientId) external {
        uint256 length = bytes(clientId).length;
        if (length == 0 || length > 64) revert InvalidClientId(length);
        clientIdOf[msg.sender] = clientId;
        emit ClientIdRegistered(msg.sender, clientId);
    }

    /// @inheritdoc IInstanceTracker
    function registerCertificate(bytes32 fingerprint, bytes calldata signature) external {
        if (fingerprint == bytes32(0)) revert ZeroIdentifier();
        (address signer,,) = ECDSA.tryRecover(MessageHashUtils.toEthSignedMessageHash(fingerprint), signature);
        if (signer != msg.sender) revert CertificateSignerMismatch(signer, msg.sender);
        _certificates[msg.sender] = Certificate(fingerprint, uint64(block.timestamp), signature);
        emit CertificateRegistered(msg.sender, fingerprint, signature);
    }

    /// @inheritdoc IInstanceTracker
    function certificateOf(address account)
        external
        view
        returns (bytes32 fingerprint, bytes memory signature, uint64 registeredAt)
    {
        Certificate storage cert = _certificates[account];
        return (cert.fingerprint, cert.signature, cert.registeredAt);
    }

    // ------------------------------------------------------------------ Merkle anchors

    /// @inheritdoc IInstanceTracker
    function anchorStates(bytes32 root, uint32 leafCount) external {
        if (root == bytes32(0)) revert ZeroIdentifier();
        if (leafCount == 0) revert NoStates();
        Anchor storage anchor = _anchors[_key(msg.sender, root)];
        if (anchor.anchoredAt != 0) revert AnchorAlreadyExists(msg.sender, root);
        (anchor.anchoredAt, anchor.leafCount) = (uint64(block.timestamp), leafCount);
        emit StatesAnchored(msg.sender, root, leafCount);
    }

    /// @inheritdoc IInstanceTracker
    function stateLeaf(bytes32 execution, bytes32 state, uint256 seq) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(execution, state, seq))));
    }

    /// @inheritdoc IInstanceTracker
    function anchorOf(address submitter, bytes32 root) external view returns (uint64 anchoredAt, uint32 leafCount) {
        Anchor storage anchor = _anchors[_key(submitter, root)];
        return (anchor.anchoredAt, anchor.leafCount);
    }

    /// @inheritdoc IInstanceTracker
    function verifyAnchoredState(
        address submitter,
        bytes32 root,
        bytes32 execution,
        bytes32 state,
        uint256 seq,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return _anchors[_key(submitter, root)].anchoredAt != 0
            && MerkleProof.verifyCalldata(proof, root, stateLeaf(execution, state, seq));
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IInstanceTracker
    function instanceKey(address owner, bytes32 execution) external pure returns (bytes32) {
        return _instanceKey(owner, execution);
    }

    /// @inheritdoc IInstanceTracker
    function startHead(bytes32 execution, bytes32 model, bytes32 instanceDocument) external pure returns (bytes32) {
        return _startHead(execution, model, instanceDocument);
    }

    /// @inheritdoc IInstanceTracker
    function instanceOf(address owner, bytes32 execution)
        external
        view
        returns (uint64 stateCount, uint32 attempts, Status status, Mode mode, bytes32 head)
    {
        bytes32 key = _instanceKey(owner, execution);
        Instance memory record = instances[key];
        head = record.status != Status.None && record.mode == Mode.Direct ? _heads[key] : bytes32(0);
        return (record.stateCount, record.attempts, record.status, record.mode, head);
    }

    /// @inheritdoc IInstanceTracker
    function modelOf(address publisher, bytes32 model) external view returns (uint64 registeredAt) {
        return _modelRegisteredAt[_key(publisher, model)];
    }

    // ------------------------------------------------------------------ internals: who and what may be written

    /// @dev The owner itself costs no SLOAD; anyone else must be an operator the owner approved.
    function _requireOwnerOrOperator(address owner) internal view {
        if (msg.sender != owner && !isOperator[owner][msg.sender]) revert NotOwnerOrOperator(owner, msg.sender);
    }

    /// @dev Checks the caller and the ids and returns the key, which must be unused (any status taken, Moved too).
    function _requireNewInstance(address owner, bytes32 execution, bytes32 model, bytes32 instanceDocument)
        internal
        view
        returns (bytes32 key)
    {
        _requireOwnerOrOperator(owner);
        if (execution == bytes32(0) || model == bytes32(0) || instanceDocument == bytes32(0)) revert ZeroIdentifier();
        key = _instanceKey(owner, execution);
        if (instances[key].status != Status.None) revert InstanceAlreadyRegistered(key);
    }

    /// @dev Checks the caller, then that the instance is Open, then its mode (so a Final instance
    /// reports InstanceIsFinal whatever the call's mode).
    function _requireOpen(address owner, bytes32 execution, Mode mode)
        internal
        view
        returns (bytes32 key, Instance storage record)
    {
        _requireOwnerOrOperator(owner);
        key = _instanceKey(owner, execution);
        record = instances[key];
        Status status = record.status;
        if (status != Status.Open) {
            if (status == Status.Final) revert InstanceIsFinal(key);
            _requireRecorded(key, status);
        }
        _requireMode(key, record.mode, mode);
    }

    /// @dev An instance is recorded under the key when it was registered and not moved away.
    function _requireRecorded(bytes32 key, Status status) internal pure {
        if (status == Status.None) revert InstanceNotRegistered(key);
        if (status == Status.Moved) revert InstanceIsMoved(key);
    }

    function _requireMode(bytes32 key, Mode actual, Mode wanted) internal pure {
        if (actual != wanted) revert WrongMode(key, uint8(actual));
    }

    /// @dev A batch starts exactly where the trace ends: a resend or a gap is refused. Returns the count.
    function _requireSequence(bytes32 key, Instance storage record, uint256 fromSeq) internal view returns (uint256) {
        uint256 count = record.stateCount;
        if (fromSeq != count) revert SequenceMismatch(key, count, fromSeq);
        return count;
    }

    /// @dev An attempt end that keeps the instance open must be the next one. Returns the new attempts.
    function _requireNextAttempt(bytes32 key, Instance storage record, uint256 attempt) internal view returns (uint32) {
        uint32 attempts = record.attempts;
        if (attempt != attempts) revert AttemptMismatch(key, attempts, attempt);
        return attempts + 1;
    }

    /// @dev A final end is a new attempt end or the last reported one (then finalised). Returns the new attempts.
    function _requireFinalAttempt(bytes32 key, Instance storage record, uint256 attempt)
        internal
        view
        returns (uint32)
    {
        uint32 attempts = record.attempts;
        if (attempt == attempts) return attempts + 1;
        if (attempts != 0 && attempt == attempts - 1) return attempts;
        revert AttemptMismatch(key, attempts, attempt);
    }

    // ------------------------------------------------------------------ internals: records

    /// @dev Registers a model for a publisher the first time; later calls change nothing and emit nothing.
    function _ensureModel(address publisher, bytes32 model) internal {
        bytes32 modelKey = _key(publisher, model);
        if (_modelRegisteredAt[modelKey] != 0) return;
        _modelRegisteredAt[modelKey] = uint64(block.timestamp);
        emit ModelRegistered(publisher, model);
    }

    /// @dev Chains and emits a batch from the stored head and stores the new head; with no states it
    /// only reads the head (for the end event).
    function _appendStatesAndStoreHead(bytes32 key, uint256 count, bytes32[] calldata states)
        internal
        returns (bytes32 head)
    {
        head = _heads[key];
        if (states.length != 0) {
            head = _appendStates(key, head, count, states);
            _heads[key] = head;
        }
    }

    /// @dev The hot loop of the contract, one pass per state: refuse a zero id, chain the head in
    /// scratch space (kept on the stack across the batch; the caller writes it once), emit
    /// StateRegistered(key, state, seq) with seq as the 32-byte log data. Written in assembly
    /// because Solidity's per-element bounds check, checked `count + i` and event encoding cost
    /// about 200 gas per state over the log itself. `states` is ABI-decoded calldata, so every
    /// word read lies inside it; `count + i` cannot overflow (count < 2**64, i < calldata size).
    function _appendStates(bytes32 key, bytes32 head, uint256 count, bytes32[] calldata states)
        internal
        returns (bytes32 result)
    {
        bytes32 topic = StateRegistered.selector;
        bytes4 zeroIdentifier = ZeroIdentifier.selector;
        assembly ("memory-safe") {
            let end := add(states.offset, shl(5, states.length))
            for { let at := states.offset } lt(at, end) { at := add(at, 0x20) } {
                let state := calldataload(at)
                if iszero(state) {
                    mstore(0x00, zeroIdentifier)
                    revert(0x00, 0x04)
                }
                mstore(0x00, head)
                mstore(0x20, state)
                head := keccak256(0x00, 0x40)
                mstore(0x00, count)
                log3(0x00, 0x20, topic, key, state)
                count := add(count, 1)
            }
            result := head
        }
    }

    function _instanceKey(address owner, bytes32 execution) internal pure returns (bytes32) {
        return _key(owner, execution);
    }

    /// @dev keccak256(abi.encode(account, id)) in scratch space.
    function _key(address account, bytes32 id) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            mstore(0x00, and(account, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(0x20, id)
            result := keccak256(0x00, 0x40)
        }
    }

    /// @dev keccak256(abi.encode(execution, model, instanceDocument)) in the free memory past the
    /// free memory pointer, which is left unchanged (nothing is allocated).
    function _startHead(bytes32 execution, bytes32 model, bytes32 instanceDocument)
        internal
        pure
        returns (bytes32 result)
    {
        assembly ("memory-safe") {
            let free := mload(0x40)
            mstore(free, execution)
            mstore(add(free, 0x20), model)
            mstore(add(free, 0x40), instanceDocument)
            result := keccak256(free, 0x60)
        }
    }

    /// @dev keccak256(a || b) in scratch space, avoiding a memory allocation per state.
    function _chain(bytes32 a, bytes32 b) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            mstore(0x00, a)
            mstore(0x20, b)
            result := keccak256(0x00, 0x40)
        }
    }
}
